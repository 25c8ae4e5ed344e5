import type { Subprocess } from "bun";
import { processTree } from "./proc.ts";

/** Processes started and not yet stopped, so an interrupted run can stop them. */
const running = new Set<StartedProcess>();

/**
 * Stops every process the benchmark started and still runs, then exits with `code`.
 * The benchmark calls it on SIGINT and SIGTERM.
 */
export async function stopAllAndExit(code: number): Promise<never> {
  await Promise.all([...running].map((started) => started.stop()));
  process.exit(code);
}

/** A peer or contender process started by the benchmark, stopped only by its own process ids. */
export interface StartedProcess {
  readonly pid: number;
  readonly process: Subprocess;
  /** Collected stderr, for error messages. */
  stderr(): string;
  /** The process and its children (nginx workers), read from /proc at call time. */
  tree(): number[];
  /** Sends SIGTERM, waits up to 3 s, then sends SIGKILL to the process and every child still alive. */
  stop(): Promise<void>;
}

/**
 * Starts `argv` with the soft descriptor limit raised to the hard limit and, when `cpus`
 * is set, pinned to those cores with taskset (which execs the command, so the pid stays).
 */
export function startProcess(argv: string[], cpus?: string, stdin: "ignore" | "pipe" = "ignore"): StartedProcess {
  const pinned = cpus === undefined ? argv : ["taskset", "-c", cpus, ...argv];
  const child = Bun.spawn(["sh", "-c", 'ulimit -n "$(ulimit -Hn)" && exec "$@"', "sh", ...pinned], {
    stdin,
    stdout: "pipe",
    stderr: "pipe",
  });
  let errors = "";
  void (async () => {
    for await (const chunk of child.stderr as ReadableStream<Uint8Array>) {
      errors += new TextDecoder().decode(chunk);
    }
  })();

  const started: StartedProcess = {
    pid: child.pid,
    process: child,
    stderr: () => errors,
    tree: () => processTree(child.pid),
    stop: async () => {
      await stopTree(child);
      running.delete(started);
    },
  };
  running.add(started);

  return started;
}

async function stopTree(child: Subprocess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return;
  }

  const tree = processTree(child.pid);
  child.kill("SIGTERM");
  const exited = await Promise.race([child.exited.then(() => true), Bun.sleep(3000).then(() => false)]);
  // Children that outlived their parent (an nginx worker after a killed master) are ended by id.
  for (const pid of exited ? tree.slice(1) : tree) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  await child.exited;
}

/** Runs a command to completion and returns its exit code and output; kills it after `timeoutMs`. */
export async function runCommand(
  argv: string[],
  timeoutMs: number,
  cpus?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const pinned = cpus === undefined ? argv : ["taskset", "-c", cpus, ...argv];
  const child = Bun.spawn(pinned, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const [stdout, stderr] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()]);
  await child.exited;
  clearTimeout(timer);

  return { code: child.exitCode, stdout, stderr };
}

/** Resolves once a TCP connect to 127.0.0.1:`port` succeeds; throws after `timeoutMs`. */
export async function waitForPort(port: number, timeoutMs: number, process?: StartedProcess): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (process !== undefined && process.process.exitCode !== null) {
      throw new Error(`process ${process.pid} exited with code ${process.process.exitCode} before accepting on port ${port}: ${process.stderr().trim()}`);
    }
    if (await canConnect(port)) {
      return;
    }
    await Bun.sleep(2);
  }
  throw new Error(`nothing accepted on 127.0.0.1:${port} within ${timeoutMs} ms${process === undefined ? "" : `: ${process.stderr().trim()}`}`);
}

function canConnect(port: number): Promise<boolean> {
  return Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }).then(
    (socket) => {
      socket.end();

      return true;
    },
    () => false,
  );
}
