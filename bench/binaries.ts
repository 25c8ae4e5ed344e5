/**
 * Measures compiled tinylb binaries: file size, start-up time to the first relayed
 * connection, and resident memory at rest.
 *
 * Usage: bun bench/binaries.ts [--runs N] [--emulator "CMD ARGS"] BINARY...
 *
 * Each run starts a greeting backend on 127.0.0.1, starts BINARY with a Unix socket listener,
 * and connects to that socket every millisecond until a connection goes through tinylb and
 * the backend's greeting arrives. The time from spawn to that greeting is the start-up time.
 * One second after that connection closes, VmRSS from /proc/PID/status is the memory at rest.
 * With --emulator the binary runs under that command (such as qemu-aarch64-static -L DIR),
 * so the figures include the emulator and say nothing about native speed.
 */
import type { Socket, TCPSocketListener } from "bun";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";

/** Maximum time one start may take; a binary that relays no connection by then fails the run. */
const START_DEADLINE_MS = 30_000;
const REST_MS = 1_000;

interface RunResult {
  startupMs: number;
  rssKiB: number;
}

function startBackend(): TCPSocketListener<undefined> {
  return Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(socket) {
        socket.write("bench\n");
      },
      data() {},
    },
  });
}

/** Resolves true when a connection to `path` delivers the first byte of the greeting. */
async function greetedThrough(path: string): Promise<boolean> {
  let socket: Socket<undefined> | undefined;
  try {
    const greeted = Promise.withResolvers<boolean>();
    socket = await Bun.connect({
      unix: path,
      socket: {
        data: () => greeted.resolve(true),
        close: () => greeted.resolve(false),
        error: () => greeted.resolve(false),
      },
    });

    return await greeted.promise;
  } catch {
    return false;
  } finally {
    socket?.end();
  }
}

function residentKiB(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (match === null) {
    throw new Error(`read /proc/${pid}/status failed: no VmRSS line`);
  }

  return Number(match[1]);
}

async function measureOnce(command: string[], backendPort: number): Promise<RunResult> {
  const dir = mkdtempSync(join(tmpdir(), "tinylb-bench-"));
  const socketPath = join(dir, "listen.sock");
  const started = performance.now();
  const child = Bun.spawn(
    [...command, "--listen", `unix:${socketPath}`, "--admin", "off", "--backend", `bench=127.0.0.1:${backendPort}`, "--log-level", "warn"],
    { stdin: "ignore", stdout: "ignore", stderr: "inherit", env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } },
  );

  try {
    while (!(await greetedThrough(socketPath))) {
      if (performance.now() - started > START_DEADLINE_MS || child.exitCode !== null) {
        throw new Error(`${command.join(" ")} did not relay a connection within ${START_DEADLINE_MS} ms`);
      }
      await Bun.sleep(1);
    }
    const startupMs = performance.now() - started;
    await Bun.sleep(REST_MS);

    return { startupMs, rssKiB: residentKiB(child.pid) };
  } finally {
    child.kill("SIGTERM");
    await child.exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);

  return sorted[Math.floor(sorted.length / 2)]!;
}

async function main(argv: string[]): Promise<void> {
  let runs = 10;
  let emulator: string[] = [];
  const binaries: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--runs") {
      runs = Number(argv[++i]);
    } else if (argv[i] === "--emulator") {
      emulator = (argv[++i] ?? "").split(" ").filter((part) => part !== "");
    } else {
      binaries.push(argv[i]!);
    }
  }

  const backend = startBackend();
  try {
    console.log("| binary | size (MB) | start-up to first relayed connection, median (ms) | RSS at rest, median (MiB) |");
    console.log("| --- | ---: | ---: | ---: |");
    // Runs alternate between the binaries, so load from other processes spreads over all of them.
    const results = new Map<string, RunResult[]>(binaries.map((binary) => [binary, []]));
    for (let run = 0; run < runs; run++) {
      for (const binary of binaries) {
        results.get(binary)!.push(await measureOnce([...emulator, binary], backend.port));
      }
    }
    for (const binary of binaries) {
      const sizeMB = statSync(binary).size / 1e6;
      const startup = median(results.get(binary)!.map((result) => result.startupMs));
      const rss = median(results.get(binary)!.map((result) => result.rssKiB)) / 1024;
      console.log(`| ${basename(binary)} | ${sizeMB.toFixed(1)} | ${startup.toFixed(0)} | ${rss.toFixed(1)} |`);
    }
  } finally {
    backend.stop(true);
  }
}

await main(process.argv.slice(2));
