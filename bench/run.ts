/**
 * tinylb's benchmark: tinylb against HAProxy, nginx's stream module and a direct connection,
 * on loopback, in one interleaved run with a fresh balancer process for every measurement.
 *
 * Usage: bun bench/run.ts [--quick] [--runs N] [--seconds S] [--warmup S] [--idle N]
 *                         [--only a,b] [--workloads a,b] [--placements a,b] [--no-write]
 *                         [--host-network]
 * `npm run bench` runs it. Results go to stdout and, unless --quick or --no-write, into
 * docs/benchmarks.md between the results markers.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { allContenders, type Contender, type ContenderContext, type RunningContender } from "./contenders.ts";
import { descriptorHardLimit } from "./proc.ts";
import { EchoBackend, startHttpBackends, startIperfServer } from "./peers.ts";
import { type StartedProcess, stopAllAndExit } from "./processes.ts";
import { record, type Results } from "./report.ts";
import { writeReport } from "./report-file.ts";
import {
  buildTinylb,
  describeMachine,
  findTools,
  inPrivateNetwork,
  reexecInNetworkNamespace,
  supportsWorkers,
  tinylbBenchFlags,
  type Tools,
} from "./setup.ts";
import {
  checkRelay,
  type LoadSettings,
  measureConnectionRate,
  measureIdleMemory,
  measureKeptAliveRate,
  measureStartup,
  measureThroughput,
  type Sample,
} from "./workloads.ts";

const REPO = join(import.meta.dir, "..");
const HTTP_PORTS = [15001, 15002, 15003, 15004];
const IPERF_PORT = 15201;
/** Descriptors kept back for each process's own files when sizing the idle-memory workload. */
const DESCRIPTOR_RESERVE = 300;

/** Command-line settings of one benchmark run. */
export interface BenchOptions {
  quick: boolean;
  runs: number;
  seconds: number;
  /** Uncounted seconds of the same wrk load before each wrk workload. */
  warmupSeconds: number;
  idleConnections: number;
  only?: string[];
  /** Workload ids to run (bulk-1, bulk-4, connection-rate, kept-alive, idle-memory); all when unset. */
  workloads?: string[];
  /** Placements to run (pinned, unpinned); both when unset. */
  placements?: string[];
  write: boolean;
}

/** The usage text, printed by --help and after an unknown option. */
const USAGE = `Usage: npm run bench -- [options]   (or: bun bench/run.ts [options])

Runs every contender and workload (about 15 minutes) and writes the results into
docs/benchmarks.md. Options:
  --quick              one short run of each measurement; writes nothing
  --runs N             runs per measurement (default 3)
  --seconds S          seconds per wrk and iperf3 measurement (default 3)
  --warmup S           uncounted seconds of load before each wrk measurement (default 3)
  --idle N             idle connections for the memory workload (default 10000)
  --only a,b           contenders to run, such as tinylb-1w,haproxy-1t,bun-relay
  --workloads a,b      bulk-1, bulk-4, connection-rate, kept-alive, idle-memory; writes nothing
  --placements a,b     pinned, unpinned; writes nothing
  --no-write           print the results only
  --host-network       run in the host's network namespace instead of a private one
  -h, --help           print this text`;

/** Options that take a value, and those that do not. */
const VALUE_OPTIONS = new Set(["--runs", "--seconds", "--warmup", "--idle", "--only", "--workloads", "--placements"]);
const SWITCH_OPTIONS = new Set(["--quick", "--no-write", "--host-network"]);

/** Returns an error message for an argument that is not an option of the benchmark, or undefined. */
function unknownArgument(argv: string[]): string | undefined {
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index]!;
    if (VALUE_OPTIONS.has(arg)) {
      index++;
    } else if (!SWITCH_OPTIONS.has(arg)) {
      return `unknown option ${JSON.stringify(arg)}`;
    }
  }

  return undefined;
}

function parseOptions(argv: string[]): BenchOptions {
  const quick = argv.includes("--quick");
  const options: BenchOptions = { quick, runs: quick ? 1 : 3, seconds: quick ? 1 : 3, warmupSeconds: quick ? 1 : 3, idleConnections: quick ? 1000 : 10_000, write: !quick };
  const value = (flag: string): string | undefined => {
    const index = argv.indexOf(flag);

    return index === -1 ? undefined : argv[index + 1];
  };
  options.runs = Number(value("--runs") ?? options.runs);
  options.seconds = Number(value("--seconds") ?? options.seconds);
  options.warmupSeconds = Number(value("--warmup") ?? options.warmupSeconds);
  options.idleConnections = Number(value("--idle") ?? options.idleConnections);
  options.only = value("--only")?.split(",");
  options.workloads = value("--workloads")?.split(",");
  options.placements = value("--placements")?.split(",");
  if (options.workloads !== undefined || options.placements !== undefined) {
    // A partial run would overwrite the recorded results with half a table.
    options.write = false;
  }
  if (argv.includes("--no-write")) {
    options.write = false;
  }
  if (![options.runs, options.seconds, options.idleConnections].every((number) => Number.isInteger(number) && number > 0)) {
    throw new Error("--runs, --seconds and --idle take positive whole numbers");
  }
  if (!Number.isInteger(options.warmupSeconds) || options.warmupSeconds < 0) {
    throw new Error("--warmup takes a whole number of seconds, 0 or more");
  }

  return options;
}

/**
 * Lowers the idle connection count to what the descriptor hard limit allows: a balancer
 * uses two descriptors per relayed connection. Prints why when it lowers it.
 */
function fitIdleConnections(requested: number): number {
  const limit = descriptorHardLimit();
  const fits = Math.floor((limit - DESCRIPTOR_RESERVE) / 2);
  if (requested <= fits) {
    return requested;
  }
  console.log(
    `bench: idle connections lowered from ${requested} to ${fits}: the descriptor hard limit is ${limit}, ` +
      `a balancer needs two descriptors per connection, and raising the hard limit needs CAP_SYS_RESOURCE`,
  );

  return fits;
}

function usable(contender: Contender, tools: Tools): boolean {
  switch (contender.kind) {
    case "haproxy":
      return tools.haproxy;
    case "nginx":
      return tools.nginx && tools.nginxStream;
    default:
      return true;
  }
}

/** Starts every contender in front of two echo backends and runs the relay check through it. */
async function checkContenders(contenders: Contender[], nextPort: () => number): Promise<Map<string, string>> {
  const failures = new Map<string, string>();
  const echoes = [new EchoBackend(), new EchoBackend()];
  try {
    for (const contender of contenders) {
      let running: RunningContender | undefined;
      try {
        running = await contender.start(
          echoes.map((echo) => echo.target),
          nextPort(),
        );
        // Two connections, so round robin sends one to each echo backend.
        const problem = (await checkRelay(running.port)) ?? (await checkRelay(running.port));
        if (problem !== undefined) {
          failures.set(contender.name, problem);
        }
      } catch (error) {
        failures.set(contender.name, (error as Error).message);
      } finally {
        await running?.stop();
      }
      console.log(`bench: correctness ${contender.name}: ${failures.get(contender.name) ?? "bytes and half-close relayed"}`);
    }
  } finally {
    for (const echo of echoes) {
      echo.stop();
    }
  }

  return failures;
}

/** A placement: where the balancer and the load generator run. */
interface Placement {
  name: string;
  balancerCpus?: string;
  loadCpus?: string;
}

interface Workload {
  id: string;
  needs: (tools: Tools) => boolean;
  /** HTTP backends (true) or the iperf3 server (false). */
  http: boolean;
  measure: (running: RunningContender, load: LoadSettings, backend: StartedProcess) => Promise<Sample>;
}

function workloads(idleConnections: number): Workload[] {
  return [
    { id: "bulk-1", http: false, needs: (tools) => tools.iperf3, measure: (running, load) => measureThroughput(running, 1, load) },
    { id: "bulk-4", http: false, needs: (tools) => tools.iperf3, measure: (running, load) => measureThroughput(running, 4, load) },
    { id: "connection-rate", http: true, needs: (tools) => tools.wrk && tools.nginx, measure: measureConnectionRate },
    { id: "kept-alive", http: true, needs: (tools) => tools.wrk && tools.nginx, measure: measureKeptAliveRate },
    {
      id: "idle-memory",
      http: true,
      needs: (tools) => tools.nginx,
      measure: (running, _load, backend) => (running.pids().length === 0 ? Promise.resolve({}) : measureIdleMemory(running, backend, idleConnections)),
    },
  ];
}

async function main(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(USAGE);

    return 0;
  }
  const unknown = unknownArgument(argv);
  if (unknown !== undefined) {
    console.error(`bench: ${unknown}\n\n${USAGE}`);

    return 2;
  }
  const exitCode = await reexecInNetworkNamespace(argv);
  if (exitCode !== undefined) {
    return exitCode;
  }

  const options = parseOptions(argv);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      console.log(`bench: ${signal} received; stopping the processes it started`);
      void stopAllAndExit(130);
    });
  }
  const tools = findTools();
  const cores = cpus().length;
  const idleConnections = fitIdleConnections(options.idleConnections);
  const workDir = mkdtempSync(join(tmpdir(), "tinylb-bench-"));
  let port = 10_000;
  const nextPort = (): number => (port = port >= 14_999 ? 10_000 : port + 1);

  try {
    const tinylbBinary = buildTinylb(REPO, workDir);
    const context: ContenderContext = { workDir, tinylbBinary, cores, maxConnections: idleConnections, tinylbFlags: tinylbBenchFlags(tinylbBinary) };
    const contenders = allContenders(context, supportsWorkers(tinylbBinary)).filter(
      (contender) => usable(contender, tools) && (options.only === undefined || contender.name === "direct" || options.only.includes(contender.name)),
    );
    if (!supportsWorkers(tinylbBinary)) {
      console.log("bench: this tinylb has no --workers flag; tinylb runs with one worker only");
    }
    const machine = describeMachine(tinylbBinary);
    machine["load average at start"] = loadAverage();
    const started = new Date();
    const failures = await checkContenders(contenders, nextPort);

    const placements: Placement[] = [{ name: "unpinned" }];
    if (tools.taskset && cores >= 2) {
      placements.unshift({ name: "pinned", balancerCpus: "0", loadCpus: "1" });
    }
    const results: Results = new Map();
    const errors: string[] = [];
    for (const placement of placements.filter((candidate) => options.placements === undefined || options.placements.includes(candidate.name))) {
      await measurePlacement(placement, contenders, options, tools, idleConnections, workDir, nextPort, results, errors);
    }

    machine["load average at end"] = loadAverage();
    const report = { options, machine, started, finished: new Date(), cores, idleConnections, privateNetwork: inPrivateNetwork(), contenders, failures, results, errors };
    writeReport(report, options.write ? join(REPO, "docs", "benchmarks.md") : undefined);
    if (errors.length > 0) {
      console.log(`bench: ${errors.length} measurement(s) failed; the report lists them under "Failed measurements"`);

      return 1;
    }

    return 0;
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}

/** Runs every workload `options.runs` times in one placement, interleaving the contenders. */
async function measurePlacement(
  placement: Placement,
  allContenders: Contender[],
  options: BenchOptions,
  tools: Tools,
  idleConnections: number,
  workDir: string,
  nextPort: () => number,
  results: Results,
  errors: string[],
): Promise<void> {
  // Pinned: one core for the balancer alone, so only one-thread contenders make sense there.
  const contenders = placement.balancerCpus === undefined ? allContenders : allContenders.filter((contender) => contender.threads === "one");
  const load: LoadSettings = {
    seconds: options.seconds,
    cpus: placement.loadCpus,
    wrkThreads: placement.loadCpus === undefined ? 2 : 1,
    wrkConnections: 32,
    warmupSeconds: options.warmupSeconds,
  };
  const httpBackends = tools.nginx ? await startHttpBackends(workDir, HTTP_PORTS, idleConnections + 50, placement.loadCpus) : undefined;
  let iperf = tools.iperf3 ? await startIperfServer(IPERF_PORT, placement.loadCpus) : undefined;
  const httpTargets = HTTP_PORTS.map((port) => `127.0.0.1:${port}`);

  try {
    for (let run = 1; run <= options.runs; run++) {
      for (const workload of workloads(idleConnections).filter((candidate) => options.workloads === undefined || options.workloads.includes(candidate.id))) {
        // Memory does not depend on placement, so it is measured unpinned only.
        if (!workload.needs(tools) || (workload.id === "idle-memory" && placement.balancerCpus !== undefined)) {
          continue;
        }
        // The Bun relay keeps no unsent tail, so bulk streams lose bytes through it and iperf3 stalls.
        for (const contender of contenders.filter((candidate) => workload.http || candidate.kind !== "bun")) {
          const label = `${placement.name} run ${run}/${options.runs} ${workload.id} ${contender.name}`;
          let running: RunningContender | undefined;
          try {
            const start = (): Promise<RunningContender> =>
              contender.start(workload.http ? httpTargets : [`127.0.0.1:${IPERF_PORT}`], nextPort(), placement.balancerCpus);
            // The Bun relay's start-up would time Bun compiling a script, not a balancer starting.
            if (workload.http && contender.kind !== "direct" && contender.kind !== "bun") {
              const startup = await measureStartup(start);
              running = startup.running;
              record(results, placement.name, "startup", contender.name, startup.sample);
            } else {
              running = await start();
            }
            const sample = await workload.measure(running, load, httpBackends!);
            record(results, placement.name, workload.id, contender.name, sample);
            console.log(`bench: ${label}: ${summarize(sample)}`);
          } catch (error) {
            errors.push(`${label}: ${(error as Error).message}`);
            console.log(`bench: ${label}: failed: ${(error as Error).message}`);
            if (!workload.http && iperf !== undefined) {
              // A broken test can leave iperf3 waiting for a client that is gone.
              await iperf.stop();
              iperf = await startIperfServer(IPERF_PORT, placement.loadCpus);
            }
          } finally {
            await running?.stop();
          }
        }
      }
    }
  } finally {
    await httpBackends?.stop();
    await iperf?.stop();
  }
}

/** Returns the 1, 5 and 15 minute load averages; other work on the machine skews the figures. */
function loadAverage(): string {
  return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(", ");
}

function summarize(sample: Sample): string {
  return Object.entries(sample)
    .map(([key, value]) => `${key}=${Number.isInteger(value) ? value : value.toFixed(3)}`)
    .join(" ");
}

process.exitCode = await main(process.argv.slice(2));
