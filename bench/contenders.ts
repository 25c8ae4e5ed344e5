import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { type StartedProcess, startProcess, waitForPort } from "./processes.ts";

/** The balancer process tree under test; `pids()` is empty for the direct connection. */
export interface RunningContender {
  /** Port the load generator connects to. */
  readonly port: number;
  pids(): number[];
  stop(): Promise<void>;
  /** The contender's stderr so far, for error messages, or "" where nothing is collected. */
  output(): string;
}

/** One balancer configuration in the comparison. */
export interface Contender {
  /** Short name used in tables, e.g. "haproxy-1t". */
  readonly name: string;
  /** One thread or worker, or as many as the machine has cores. */
  readonly threads: "one" | "all";
  /** "bun" is bench/minimal-relay.ts: not a balancer, but the floor Bun sets for tinylb. */
  readonly kind: "direct" | "haproxy" | "nginx" | "tinylb" | "bun";
  /**
   * Starts the balancer on 127.0.0.1:`port` in front of `targets` (`host:port`), pinned to
   * `cpus` when set, and resolves once it accepts connections.
   */
  start(targets: string[], port: number, cpus?: string): Promise<RunningContender>;
}

/** Settings shared by the contenders, including the directory for their config files. */
export interface ContenderContext {
  workDir: string;
  tinylbBinary: string;
  cores: number;
  /** Maximum connections a balancer must hold open at once (the idle-memory workload). */
  maxConnections: number;
  /** Flags added to every tinylb command line, such as `--admin off`. */
  tinylbFlags: string[];
  /** A command that runs each balancer, such as valgrind for bench/instructions.ts; none by default. */
  launcher?: string[];
  /** Milliseconds a balancer may take to accept its first connection (default 10 s). */
  startTimeoutMs?: number;
}

const DIRECT: Contender = {
  name: "direct",
  threads: "one",
  kind: "direct",
  // No balancer: the load generator connects to the first target itself.
  start: async (targets) => ({ port: Number(targets[0]!.split(":").pop()), pids: () => [], stop: async () => {}, output: () => "" }),
};

function running(process: StartedProcess, port: number): RunningContender {
  return { port, pids: () => process.tree(), stop: () => process.stop(), output: () => process.stderr() };
}

/** Starts `argv` behind the context's launcher, if any. */
function launch(context: ContenderContext, argv: string[], cpus?: string): StartedProcess {
  return startProcess([...(context.launcher ?? []), ...argv], cpus);
}

async function started(context: ContenderContext, process: StartedProcess, port: number): Promise<RunningContender> {
  try {
    await waitForPort(port, context.startTimeoutMs ?? 10_000, process);
  } catch (error) {
    await process.stop();
    throw error;
  }

  return running(process, port);
}

function haproxy(context: ContenderContext, threads: "one" | "all"): Contender {
  const name = threads === "one" ? "haproxy-1t" : `haproxy-${context.cores}t`;

  return {
    name,
    threads,
    kind: "haproxy",
    async start(targets, port, cpus) {
      const servers = targets.map((target, i) => `  server b${i + 1} ${target}`).join("\n");
      const config = `global
  nbthread ${threads === "one" ? 1 : context.cores}
  maxconn ${context.maxConnections + 50}

defaults
  mode tcp
  timeout connect 3s
  timeout client 300s
  timeout server 300s

frontend bench
  bind 127.0.0.1:${port}
  default_backend pool

backend pool
  balance roundrobin
${servers}
`;
      const path = join(context.workDir, `${name}.cfg`);
      writeFileSync(path, config);

      // -db: stay in the foreground without the master process, so the pid is the balancer.
      return started(context, launch(context, ["haproxy", "-db", "-f", path], cpus), port);
    },
  };
}

function nginx(context: ContenderContext, threads: "one" | "all"): Contender {
  const name = threads === "one" ? "nginx-1w" : "nginx-auto";

  return {
    name,
    threads,
    kind: "nginx",
    async start(targets, port, cpus) {
      const servers = targets.map((target) => `    server ${target};`).join("\n");
      const config = `load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off;
worker_processes ${threads === "one" ? 1 : "auto"};
worker_rlimit_nofile ${2 * context.maxConnections + 100};
pid ${join(context.workDir, `${name}.pid`)};
error_log stderr warn;
events {
  worker_connections ${2 * context.maxConnections + 100};
}
stream {
  upstream pool {
${servers}
  }
  server {
    listen 127.0.0.1:${port};
    proxy_pass pool;
    proxy_half_close on;
    proxy_timeout 300s;
  }
}
`;
      const path = join(context.workDir, `${name}.conf`);
      writeFileSync(path, config);

      return started(context, launch(context, ["nginx", "-p", context.workDir, "-e", "stderr", "-c", path], cpus), port);
    },
  };
}

function tinylb(context: ContenderContext, threads: "one" | "all"): Contender {
  const name = threads === "one" ? "tinylb-1w" : `tinylb-${context.cores}w`;

  return {
    name,
    threads,
    kind: "tinylb",
    async start(targets, port, cpus) {
      const backends = targets.flatMap((target, i) => ["--backend", `b${i + 1}=${target}`]);
      const workers = threads === "one" ? [] : ["--workers", String(context.cores)];
      const argv = [context.tinylbBinary, "--listen", `127.0.0.1:${port}`, ...backends, ...workers, ...context.tinylbFlags, "--log-level", "warn"];

      return started(context, launch(context, argv, cpus), port);
    },
  };
}

/**
 * Returns the smallest relay Bun allows (bench/minimal-relay.ts), run by the Bun that runs the
 * benchmark. It has no timeouts, limits or backpressure, so it is a reference row, not a
 * balancer. It runs only the HTTP workloads, because bulk streams lose bytes through it.
 */
function bunRelay(context: ContenderContext): Contender {
  return {
    name: "bun-relay",
    threads: "one",
    kind: "bun",
    async start(targets, port, cpus) {
      const ports = targets.map((target) => target.split(":").pop()!);
      const argv = [process.execPath, join(import.meta.dir, "minimal-relay.ts"), String(port), ...ports];

      return started(context, launch(context, argv, cpus), port);
    },
  };
}

/**
 * Returns every contender in table order. `tinylbWorkers` adds tinylb with one worker per core
 * when the binary accepts `--workers`.
 */
export function allContenders(context: ContenderContext, tinylbWorkers: boolean): Contender[] {
  const contenders = [
    DIRECT,
    haproxy(context, "one"),
    haproxy(context, "all"),
    nginx(context, "one"),
    nginx(context, "all"),
    tinylb(context, "one"),
  ];
  if (tinylbWorkers) {
    contenders.push(tinylb(context, "all"));
  }
  contenders.push(bunRelay(context));

  return contenders;
}
