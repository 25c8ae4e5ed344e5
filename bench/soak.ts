/**
 * Soak run: mixed traffic through `dist/tinylb` with periodic backend set changes, sampling
 * the process's resident memory and open descriptors, which must stay flat.
 *
 * Usage: bun bench/soak.ts [DURATION] (for example 10m; default 60s), or `npm run soak -- 10m`.
 * Every peer runs on 127.0.0.1. The run stops by itself after DURATION, and exits 1 when
 * descriptors or memory grew, or a transfer to a backend that never left the set was corrupted.
 */
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseDuration } from "../src/duration.ts";
import { EchoBackend, FaultProcess, openDescriptors, residentBytes, transfer } from "../test/support/fault-peers.ts";

const KEPT = ["kept-1", "kept-2"];
const CHURNED = ["churn-1", "churn-2", "churn-3"];
const TRANSFERS_IN_FLIGHT = 50;
const IDLE_CLIENTS = 20;
const SET_CHANGE_MS = 2000;
const SAMPLE_MS = 5000;
/** Memory growth from the first to the last quarter of the run that still counts as flat. */
const MAX_RSS_GROWTH = 0.25;

interface Sample {
  seconds: number;
  rssMiB: number;
  descriptors: number;
  transfers: number;
}

function parseArguments(): number {
  const text = process.argv[2] ?? "60s";
  const duration = parseDuration(text);
  if (typeof duration === "string") {
    console.error(`soak: invalid duration "${text}": ${duration}`);
    process.exit(2);
  }

  return duration;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);

  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

async function main(): Promise<number> {
  const durationMs = parseArguments();
  const backends = new Map([...KEPT, ...CHURNED].map((id) => [id, new EchoBackend(id)]));
  const folder = mkdtempSync(join(tmpdir(), "tinylb-soak-"));
  const configPath = join(folder, "tinylb.json");
  const writeSet = (ids: string[]): void => {
    const body = JSON.stringify({ listen: "127.0.0.1:0", backends: ids.map((id) => ({ id, target: backends.get(id)!.target })) });
    writeFileSync(`${configPath}.next`, body);
    renameSync(`${configPath}.next`, configPath);
  };
  writeSet([...KEPT, ...CHURNED]);
  const tinylb = new FaultProcess(["--config", configPath, "--no-watch-config"]);

  const stats = { transfers: 0, intact: 0, cut: 0, corruptedKept: 0, vanished: 0, setChanges: 0 };
  const samples: Sample[] = [];
  try {
    const port = await tinylb.port();
    const startedAt = performance.now();
    const elapsed = (): number => performance.now() - startedAt;
    const baselineDescriptors = openDescriptors(tinylb.pid);
    console.log(`soak: ${durationMs / 1000} s against pid ${tinylb.pid} on port ${port}; ${baselineDescriptors} descriptors at start`);

    const running = (): boolean => elapsed() < durationMs && tinylb.running;
    const load = async (): Promise<void> => {
      while (running()) {
        const size = 1024 * Math.floor(1 + Math.random() * 1024);
        const result = await transfer(port, size, { greeted: true, timeoutMs: 60_000 });
        stats.transfers++;
        const intact = result.ended && result.receivedHash === result.sentHash;
        if (intact) {
          stats.intact++;
        } else if (KEPT.includes(result.greeting)) {
          stats.corruptedKept++;
        } else {
          stats.cut++;
        }
      }
    };
    const idle = async (): Promise<void> => {
      while (running()) {
        const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {}, error() {} } }).catch(() => undefined);
        await Bun.sleep(500 + Math.random() * 3000);
        socket?.end();
      }
    };
    const vanish = async (): Promise<void> => {
      while (running()) {
        const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {}, error() {} } }).catch(() => undefined);
        socket?.write("hello\n");
        socket?.terminate();
        stats.vanished++;
        await Bun.sleep(20);
      }
    };
    const churn = async (): Promise<void> => {
      while (running()) {
        await Bun.sleep(SET_CHANGE_MS);
        writeSet([...KEPT, ...CHURNED.filter(() => Math.random() < 0.5)]);
        tinylb.process.kill("SIGHUP");
        stats.setChanges++;
      }
    };
    const sample = async (): Promise<void> => {
      while (running()) {
        samples.push({
          seconds: Math.round(elapsed() / 1000),
          rssMiB: residentBytes(tinylb.pid) / 2 ** 20,
          descriptors: openDescriptors(tinylb.pid),
          transfers: stats.transfers,
        });
        const last = samples.at(-1)!;
        console.log(`${String(last.seconds).padStart(6)} s  RSS ${last.rssMiB.toFixed(1).padStart(7)} MiB  descriptors ${String(last.descriptors).padStart(5)}  transfers ${last.transfers}`);
        await Bun.sleep(SAMPLE_MS);
      }
    };

    await Promise.all([
      ...Array.from({ length: TRANSFERS_IN_FLIGHT }, load),
      ...Array.from({ length: IDLE_CLIENTS }, idle),
      vanish(),
      churn(),
      sample(),
    ]);

    // Once the load stops, every connection must close and descriptors return to the start value.
    const settleUntil = performance.now() + 10_000;
    while (openDescriptors(tinylb.pid) !== baselineDescriptors && performance.now() < settleUntil) {
      await Bun.sleep(100);
    }
    const finalDescriptors = openDescriptors(tinylb.pid);
    // Samples taken while the heap and the kernel buffers fill up are left out of the comparison.
    const warmUpSeconds = Math.min(30, (0.2 * durationMs) / 1000);
    const steady = samples.filter((sample) => sample.seconds >= warmUpSeconds);
    const quarter = Math.max(1, Math.floor(steady.length / 4));
    const earlyRss = median(steady.slice(0, quarter).map((sample) => sample.rssMiB));
    const lateRss = median(steady.slice(-quarter).map((sample) => sample.rssMiB));
    const growth = earlyRss > 0 ? (lateRss - earlyRss) / earlyRss : 0;

    console.log("");
    console.log(`transfers ${stats.transfers}: ${stats.intact} intact, ${stats.cut} cut by a set change, ${stats.corruptedKept} to kept backends corrupted or cut`);
    console.log(`vanishing clients ${stats.vanished}, set changes ${stats.setChanges}`);
    console.log(`RSS median after the ${warmUpSeconds.toFixed(0)} s warm-up: first quarter ${earlyRss.toFixed(1)} MiB, last quarter ${lateRss.toFixed(1)} MiB (${(growth * 100).toFixed(1)} %)`);
    console.log(`descriptors at start ${baselineDescriptors}, after the load ${finalDescriptors}`);

    const flat = finalDescriptors === baselineDescriptors && growth <= MAX_RSS_GROWTH && stats.corruptedKept === 0 && tinylb.running;
    console.log(flat ? "soak: flat" : "soak: NOT flat");

    return flat ? 0 : 1;
  } finally {
    await tinylb[Symbol.asyncDispose]();
    for (const backend of backends.values()) {
      backend.stop();
    }
    rmSync(folder, { recursive: true, force: true });
  }
}

process.exit(await main());
