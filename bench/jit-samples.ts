/**
 * Splits the CPU time that `perf record` sampled in JIT-compiled JavaScript by function.
 *
 * JavaScriptCore writes each function it compiles (address, size, name) to a jitdump file
 * when Bun runs with `BUN_JSC_useJITDump=1 BUN_JSC_jitDumpDirectory=DIR`. With Bun 1.4.4,
 * `perf inject --jit` mapped no sample with that file, so this script matches the sample
 * addresses of `perf script` against it. A compiled tinylb binary names every function
 * `<name not materialized>`; run `src/main.ts` with Bun to get names.
 *
 * Usage: bun bench/jit-samples.ts PERF_DATA JITDUMP CONNECTIONS [TOP]
 *   PERF_DATA   from `perf record -e cpu-clock -F HZ -p PID` of that process
 *   CONNECTIONS connections relayed while perf recorded, to print µs per connection
 *   TOP         functions to list (default 30)
 */
import { readFileSync } from "node:fs";

interface CodeLoad {
  address: bigint;
  size: bigint;
  name: string;
}

/** Record type of a compiled function in the perf jitdump format (JIT_CODE_LOAD). */
const JIT_CODE_LOAD = 0;

/** Reads every JIT_CODE_LOAD record, sorted by address. A later load at the same address replaces an earlier one. */
function readCodeLoads(path: string): CodeLoad[] {
  const bytes = readFileSync(path);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const byAddress = new Map<bigint, CodeLoad>();
  // The file header's third 32-bit field is its own size, and the records follow it.
  let offset = view.getUint32(8, true);
  while (offset + 16 <= bytes.byteLength) {
    const type = view.getUint32(offset, true);
    const recordSize = view.getUint32(offset + 4, true);
    if (recordSize === 0) {
      break;
    }
    if (type === JIT_CODE_LOAD) {
      // Record header (16 bytes), pid, tid, vma, code address, code size, code index, then the name.
      const address = view.getBigUint64(offset + 32, true);
      const size = view.getBigUint64(offset + 40, true);
      const nameStart = offset + 56;
      const nameEnd = bytes.indexOf(0, nameStart);
      byAddress.set(address, { address, size, name: bytes.toString("utf8", nameStart, nameEnd) });
    }
    offset += recordSize;
  }

  return [...byAddress.values()].sort(compareAddresses);
}

function compareAddresses(a: CodeLoad, b: CodeLoad): number {
  if (a.address === b.address) {
    return 0;
  }

  return a.address < b.address ? -1 : 1;
}

/** Returns the load whose code range contains `address`, by binary search over loads sorted by address. */
function findLoad(loads: CodeLoad[], address: bigint): CodeLoad | undefined {
  let low = 0;
  let high = loads.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (loads[middle]!.address <= address) {
      low = middle + 1;
    } else {
      high = middle;
    }
  }
  const candidate = loads[low - 1];

  return candidate !== undefined && address < candidate.address + candidate.size ? candidate : undefined;
}

const [perfData, jitdump, connectionsArgument, topArgument] = process.argv.slice(2);
const connections = Number(connectionsArgument);
if (perfData === undefined || jitdump === undefined || !(connections > 0)) {
  throw new Error("missing or invalid arguments. Usage: bun bench/jit-samples.ts PERF_DATA JITDUMP CONNECTIONS [TOP]");
}
const top = Number(topArgument ?? 30);

const loads = readCodeLoads(jitdump);
const script = Bun.spawnSync(["perf", "script", "-i", perfData, "-F", "ip,period"]);
if (script.exitCode !== 0) {
  throw new Error(`perf script failed with exit code ${script.exitCode}: ${script.stderr.toString().trim()}`);
}

// Each cpu-clock sample carries its period in nanoseconds.
const nanosecondsByName = new Map<string, number>();
let jitNanoseconds = 0;
for (const line of script.stdout.toString().split("\n")) {
  const [period, ip] = line.trim().split(/\s+/);
  if (period === undefined || ip === undefined) {
    continue;
  }
  const load = findLoad(loads, BigInt(`0x${ip}`));
  if (load === undefined) {
    continue;
  }
  jitNanoseconds += Number(period);
  nanosecondsByName.set(load.name, (nanosecondsByName.get(load.name) ?? 0) + Number(period));
}

const perConnection = (nanoseconds: number): string => (nanoseconds / 1000 / connections).toFixed(3);
console.log(`JIT-compiled code: ${perConnection(jitNanoseconds)} µs per connection over ${connections} connections`);
const ranked = [...nanosecondsByName].sort((a, b) => b[1] - a[1]).slice(0, top);
for (const [name, nanoseconds] of ranked) {
  console.log(`  ${perConnection(nanoseconds)} µs  ${name.slice(0, 120)}`);
}
