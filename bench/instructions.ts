/**
 * Counts the user-space instructions that tinylb, HAProxy and the bare Bun relay execute per
 * connection and per kept-alive request, under valgrind's callgrind. Unlike CPU time, the
 * count does not move with the machine's load, so it can compare two builds on a busy machine.
 * It leaves out the kernel, where most of a connection's time goes (see docs/benchmarks.md).
 *
 * Each contender starts under callgrind in front of four nginx backends, serves an uncounted
 * warm-up (so that JavaScriptCore has compiled the hot paths), then the counted load, and
 * callgrind dumps its counts per thread. Thread 1 is the one that accepts and relays.
 *
 * Usage: bun bench/instructions.ts [--warmup N] [--connections N] [--requests N] [--only a,b] [--keep]
 * `npm run bench:instructions` runs it (about 5 minutes); it writes nothing.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { allContenders, type Contender, type ContenderContext } from "./contenders.ts";
import { startHttpBackends } from "./peers.ts";
import { runCommand, stopAllAndExit } from "./processes.ts";
import { buildTinylb, reexecInNetworkNamespace, tinylbBenchFlags } from "./setup.ts";

const REPO = join(import.meta.dir, "..");
const HTTP_PORTS = [15501, 15502, 15503, 15504];
const CONTENDER_PORT = 15600;
/** Connections the load generator keeps open at once; one core runs the contender under valgrind. */
const CONCURRENCY = 8;
/** Milliseconds one connection or request may take under valgrind before the run fails. */
const REQUEST_TIMEOUT_MS = 30_000;
const CONTENDERS = ["haproxy-1t", "tinylb-1w", "bun-relay"];
const CLOSE_REQUEST = "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
const KEEPALIVE_REQUEST = "GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
/** The end of each reply of the nginx backends (see `HTTP_BODY`). */
const REPLY_END = "ok\n";

const USAGE = `Usage: npm run bench:instructions -- [options]   (or: bun bench/instructions.ts [options])

Counts user-space instructions per connection and per kept-alive request under valgrind's
callgrind, for ${CONTENDERS.join(", ")}. It needs valgrind, nginx and haproxy
(apt-get install valgrind nginx-light haproxy) and takes about 5 minutes. Options:
  --warmup N        uncounted connections, then uncounted requests, before each count (default 20000)
  --connections N   counted connections with Connection: close (default 4000)
  --requests N      counted requests over ${CONCURRENCY} kept-alive connections (default 8000)
  --only a,b        contenders to run (default: all)
  --keep            keep callgrind's files (NAME.PID.DUMP-THREAD) in the work folder it names
  -h, --help        print this text`;

interface Options {
  warmup: number;
  connections: number;
  requests: number;
  only: string[];
  keep: boolean;
}

/** Instructions of one counted load, per thread of the contender, thread 1 first. */
interface Count {
  contender: string;
  workload: "connection" | "request";
  units: number;
  threads: number[];
}

function parseOptions(argv: string[]): Options | string {
  const options: Options = { warmup: 20_000, connections: 4000, requests: 8000, only: CONTENDERS, keep: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = argv[i + 1];
    if (flag === "--keep") {
      options.keep = true;
    } else if (flag === "--only" && value !== undefined) {
      options.only = value.split(",");
      i++;
    } else if ((flag === "--warmup" || flag === "--connections" || flag === "--requests") && value !== undefined && /^[1-9]\d*$/.test(value)) {
      options[flag.slice(2) as "warmup" | "connections" | "requests"] = Number(value);
      i++;
    } else {
      return `invalid option ${JSON.stringify(flag)}${value === undefined ? "" : ` ${JSON.stringify(value)}`}`;
    }
  }
  const unknown = options.only.filter((name) => !CONTENDERS.includes(name));

  return unknown.length > 0 ? `unknown contender ${unknown.join(",")}; pick from ${CONTENDERS.join(",")}` : options;
}

/** Makes `total` HTTP requests with `Connection: close`, `CONCURRENCY` at a time, each on a new connection. */
async function closeLoad(port: number, total: number): Promise<void> {
  let started = 0;
  const worker = async (): Promise<void> => {
    while (started < total) {
      started++;
      await oneConnection(port);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

function oneConnection(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let reply = "";
    const timer = setTimeout(() => reject(new Error(`a connection through port ${port} took over ${REQUEST_TIMEOUT_MS} ms`)), REQUEST_TIMEOUT_MS);
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open: (socket) => void socket.write(CLOSE_REQUEST),
        data: (_socket, chunk) => void (reply += chunk.toString("latin1")),
        close: () => {
          clearTimeout(timer);
          reply.endsWith(REPLY_END) ? resolve() : reject(new Error(`a reply through port ${port} was cut: ${JSON.stringify(reply.slice(-80))}`));
        },
        error: () => {},
      },
    }).catch(reject);
  });
}

/** Makes `total` HTTP requests over `CONCURRENCY` kept-alive connections, one request at a time on each. */
async function keptAliveLoad(port: number, total: number): Promise<void> {
  const perConnection = Math.ceil(total / CONCURRENCY);
  await Promise.all(Array.from({ length: CONCURRENCY }, () => keptAliveConnection(port, perConnection)));
}

async function keptAliveConnection(port: number, requests: number): Promise<void> {
  let reply = "";
  let replied: (() => void) | undefined;
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data: (_socket, chunk) => {
        reply += chunk.toString("latin1");
        if (reply.endsWith(REPLY_END)) {
          reply = "";
          replied?.();
        }
      },
      error: () => {},
    },
  });
  try {
    for (let i = 0; i < requests; i++) {
      const { promise, resolve, reject } = Promise.withResolvers<void>();
      const timer = setTimeout(() => reject(new Error(`a kept-alive request through port ${port} took over ${REQUEST_TIMEOUT_MS} ms`)), REQUEST_TIMEOUT_MS);
      replied = resolve;
      socket.write(KEEPALIVE_REQUEST);
      await promise.finally(() => clearTimeout(timer));
    }
  } finally {
    socket.end();
  }
}

/** Sends `command` (`--zero` or `--dump`) to the callgrind of process `pid`, and waits until it is done. */
async function controlCallgrind(command: string, pid: number): Promise<void> {
  const result = await runCommand(["callgrind_control", command, String(pid)], 60_000);
  if (result.code !== 0) {
    throw new Error(`callgrind_control ${command} ${pid} failed with exit code ${result.code}: ${result.stderr.trim()}`);
  }
}

/** Returns the instructions per thread of callgrind's dump number `dump` of process `pid`, thread 1 first. */
function readDump(workDir: string, name: string, pid: number, dump: number): number[] {
  const prefix = `${name}.${pid}.${dump}-`;
  const files = readdirSync(workDir)
    .filter((file) => file.startsWith(prefix))
    .sort();

  return files.map((file) => Number(/^summary: (\d+)$/m.exec(readFileSync(join(workDir, file), "utf8"))?.[1] ?? 0));
}

/** Runs `contender` under callgrind through both workloads and returns the two counts. */
async function countContender(contender: Contender, context: ContenderContext, options: Options): Promise<Count[]> {
  const running = await contender.start(HTTP_PORTS.map((port) => `127.0.0.1:${port}`), CONTENDER_PORT);
  const pid = running.pids()[0]!;
  const counts: Count[] = [];
  try {
    let dump = 0;
    const loads: [Count["workload"], (port: number, total: number) => Promise<void>, number][] = [
      ["connection", closeLoad, options.connections],
      ["request", keptAliveLoad, options.requests],
    ];
    for (const [workload, load, units] of loads) {
      await load(running.port, options.warmup);
      await controlCallgrind("--zero", pid);
      await load(running.port, units);
      await controlCallgrind("--dump", pid);
      dump++;
      counts.push({ contender: contender.name, workload, units, threads: readDump(context.workDir, contender.name, pid, dump) });
    }
  } finally {
    await running.stop();
  }

  return counts;
}

function formatCounts(counts: Count[]): string {
  const lines = ["| contender | per | thread 1 | other threads | total | vs HAProxy |", "|---|---|---|---|---|---|"];
  const total = (count: Count): number => count.threads.reduce((sum, threadCount) => sum + threadCount, 0) / count.units;
  for (const count of counts) {
    const haproxy = counts.find((other) => other.contender === "haproxy-1t" && other.workload === count.workload);
    const first = (count.threads[0] ?? 0) / count.units;
    const ratio = haproxy === undefined ? "" : `${(total(count) / total(haproxy)).toFixed(2)}×`;
    lines.push(`| ${count.contender} | ${count.workload} | ${Math.round(first).toLocaleString("en-US")} | ${Math.round(total(count) - first).toLocaleString("en-US")} | ${Math.round(total(count)).toLocaleString("en-US")} | ${ratio} |`);
  }

  return lines.join("\n");
}

async function main(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(USAGE);

    return 0;
  }
  const options = parseOptions(argv);
  if (typeof options === "string") {
    console.error(`bench:instructions: ${options}\n\n${USAGE}`);

    return 2;
  }
  const missing = ["valgrind", "callgrind_control", "nginx", ...(options.only.includes("haproxy-1t") ? ["haproxy"] : [])].filter((tool) => Bun.which(tool) === null);
  if (missing.length > 0) {
    console.error(`bench:instructions: ${missing.join(", ")} not found; apt-get install valgrind nginx-light haproxy`);

    return 2;
  }
  const exitCode = await reexecInNetworkNamespace(argv);
  if (exitCode !== undefined) {
    return exitCode;
  }
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => void stopAllAndExit(130));
  }

  const workDir = mkdtempSync(join(tmpdir(), "tinylb-instructions-"));
  try {
    const tinylbBinary = buildTinylb(REPO, workDir);
    const backends = await startHttpBackends(workDir, HTTP_PORTS, 100);
    const counts: Count[] = [];
    try {
      for (const name of options.only) {
        const callgrind = ["valgrind", "--tool=callgrind", "--separate-threads=yes", "--dump-instr=no", `--callgrind-out-file=${join(workDir, name)}.%p`];
        // Valgrind keeps some descriptors of its own, so HAProxy gets a small maxconn.
        const context: ContenderContext = { workDir, tinylbBinary, cores: 1, maxConnections: 1000, tinylbFlags: tinylbBenchFlags(tinylbBinary), launcher: callgrind, startTimeoutMs: 60_000 };
        const contender = allContenders(context, false).find((candidate) => candidate.name === name)!;
        console.log(`bench:instructions: ${name}: ${options.warmup} + ${options.connections} connections, then ${options.warmup} + ${options.requests} requests`);
        counts.push(...(await countContender(contender, context, options)));
      }
    } finally {
      await backends.stop();
    }
    console.log(`\nUser-space instructions per connection and per kept-alive request (callgrind, after ${options.warmup} uncounted of each)\n`);
    console.log(formatCounts(counts));
  } finally {
    if (options.keep) {
      console.log(`\ncallgrind's files are in ${workDir}`);
    } else {
      rmSync(workDir, { recursive: true, force: true });
    }
  }

  return 0;
}

process.exit(await main(process.argv.slice(2)));
