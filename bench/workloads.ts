import type { Socket } from "bun";
import { readdirSync } from "node:fs";
import type { RunningContender } from "./contenders.ts";
import { cpuSeconds, rssBytes } from "./proc.ts";
import { runCommand, type StartedProcess, startProcess } from "./processes.ts";

/** Figures of one measurement; a missing key means the workload does not apply. */
export type Sample = Record<string, number>;

/** Load generator settings: its cores and how long each timed workload lasts. */
export interface LoadSettings {
  seconds: number;
  /** Cores for the load generator (taskset list), or undefined for no pinning. */
  cpus?: string;
  /** wrk threads and connections. */
  wrkThreads: number;
  wrkConnections: number;
  /** Seconds of the same wrk load run first and not counted (see `warmUp`). */
  warmupSeconds: number;
}

/**
 * Runs the wrk load for `load.warmupSeconds` without counting it, so one-time costs stay out
 * of the per-connection and per-request figures. Such costs are page faults as buffers grow,
 * in every contender, and the JIT compilation of tinylb's hot paths by Bun's JavaScript
 * engine (about 0.2 s of CPU in the first seconds of load). Each worker thread compiles its
 * own copy and gets only its share of the load, so with several workers the compiles take
 * longer to finish. Start-up is measured on its own.
 */
async function warmUp(port: number, extra: string[], load: LoadSettings): Promise<void> {
  if (load.warmupSeconds > 0) {
    await runWrk(port, extra, { ...load, seconds: load.warmupSeconds });
  }
}

/** Measures CPU seconds of the balancer's processes around `work`. */
async function withCpu<T>(running: RunningContender, work: () => Promise<T>): Promise<{ result: T; cpu: number; wall: number }> {
  const pids = running.pids();
  const cpuBefore = cpuSeconds(pids);
  const started = performance.now();
  const result = await work();
  const wall = (performance.now() - started) / 1000;
  const cpu = cpuSeconds(pids) - cpuBefore;

  return { result, cpu, wall };
}

/**
 * Bulk throughput with iperf3 through the balancer, `streams` TCP streams in parallel.
 * Returns Gbit/s received and the balancer's CPU seconds per GiB relayed.
 */
export async function measureThroughput(running: RunningContender, streams: number, load: LoadSettings): Promise<Sample> {
  // The readiness check's connection reaches the iperf3 server through the balancer too, and
  // iperf3 3.12 rejects a test while it still handles that one, so a failed test is retried.
  for (let attempt = 1; ; attempt++) {
    try {
      return await runIperf(running, streams, load);
    } catch (error) {
      if (attempt === 3) {
        throw error;
      }
      await Bun.sleep(1000);
    }
  }
}

async function runIperf(running: RunningContender, streams: number, load: LoadSettings): Promise<Sample> {
  const argv = ["iperf3", "--client", "127.0.0.1", "--port", String(running.port), "--time", String(load.seconds), "--parallel", String(streams), "--json"];
  const { result, cpu, wall } = await withCpu(running, () => runCommand(argv, (load.seconds + 20) * 1000, load.cpus));
  let report: { end?: { sum_received?: { bits_per_second?: number; bytes?: number } }; error?: string };
  try {
    report = JSON.parse(result.stdout);
  } catch {
    throw new Error(`iperf3 printed no JSON report (exit ${result.code}): ${result.stderr.trim()}`);
  }
  const received = report.end?.sum_received;
  if (report.error !== undefined || received?.bits_per_second === undefined || received.bytes === undefined) {
    throw new Error(`iperf3 failed: ${report.error ?? "no sum_received in the report"}`);
  }
  const gib = received.bytes / 2 ** 30;
  const sample: Sample = { gbps: received.bits_per_second / 1e9 };
  if (running.pids().length > 0) {
    sample.cpuSecondsPerGiB = cpu / gib;
    sample.cpuPercent = (100 * cpu) / wall;
  }

  return sample;
}

/** Parsed figures of a wrk run. */
interface WrkResult {
  requests: number;
  requestsPerSecond: number;
  errors: number;
  p50Ms?: number;
  p99Ms?: number;
}

async function runWrk(port: number, extra: string[], load: LoadSettings): Promise<WrkResult> {
  const argv = ["wrk", "-t", String(load.wrkThreads), "-c", String(load.wrkConnections), "-d", `${load.seconds}s`, ...extra, `http://127.0.0.1:${port}/`];
  const { code, stdout, stderr } = await runCommand(argv, (load.seconds + 20) * 1000, load.cpus);
  const number = (pattern: RegExp): number | undefined => {
    const match = pattern.exec(stdout);

    return match === null ? undefined : Number(match[1]);
  };
  const requests = number(/(\d+) requests in/);
  const requestsPerSecond = number(/Requests\/sec:\s+([\d.]+)/);
  if (code !== 0 || requests === undefined || requestsPerSecond === undefined) {
    throw new Error(`wrk failed (exit ${code}): ${(stderr + stdout).trim()}`);
  }
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const errors =
    (socketErrors === null ? 0 : socketErrors.slice(1).reduce((sum, value) => sum + Number(value), 0)) +
    (number(/Non-2xx or 3xx responses: (\d+)/) ?? 0);

  return { requests, requestsPerSecond, errors, p50Ms: latencyMs(stdout, "50"), p99Ms: latencyMs(stdout, "99") };
}

function latencyMs(output: string, percentile: string): number | undefined {
  const match = new RegExp(`^\\s+${percentile}%\\s+([\\d.]+)(us|ms|s)$`, "m").exec(output);
  if (match === null) {
    return undefined;
  }
  const scale = { us: 0.001, ms: 1, s: 1000 }[match[2] as "us" | "ms" | "s"];

  return Number(match[1]) * scale;
}

/**
 * Connection rate: wrk sends one request per connection (`Connection: close`), spread by the
 * balancer over several HTTP backends. Returns connections per second and the balancer's CPU
 * microseconds per connection.
 */
export async function measureConnectionRate(running: RunningContender, load: LoadSettings): Promise<Sample> {
  const extra = ["-H", "Connection: close"];
  await warmUp(running.port, extra, load);
  const { result, cpu } = await withCpu(running, () => runWrk(running.port, extra, load));
  const sample: Sample = { connectionsPerSecond: result.requestsPerSecond, errors: result.errors };
  if (running.pids().length > 0) {
    sample.cpuMicrosecondsPerConnection = (1e6 * cpu) / result.requests;
    sample.cpuPercent = (100 * cpu) / load.seconds;
  }

  return sample;
}

/**
 * Request rate over kept-alive connections, with wrk's p50 and p99 latency. Returns requests
 * per second and the balancer's CPU microseconds per request.
 */
export async function measureKeptAliveRate(running: RunningContender, load: LoadSettings): Promise<Sample> {
  await warmUp(running.port, [], load);
  const { result, cpu } = await withCpu(running, () => runWrk(running.port, ["--latency"], load));
  const sample: Sample = { requestsPerSecond: result.requestsPerSecond, errors: result.errors };
  if (result.p50Ms !== undefined && result.p99Ms !== undefined) {
    sample.p50Ms = result.p50Ms;
    sample.p99Ms = result.p99Ms;
  }
  if (running.pids().length > 0) {
    sample.cpuMicrosecondsPerRequest = (1e6 * cpu) / result.requests;
    sample.cpuPercent = (100 * cpu) / load.seconds;
  }

  return sample;
}

/**
 * Start-up time: from the call that starts the balancer to the first byte of an HTTP reply
 * relayed through it. `start` resolves once the port accepts, polling every 2 ms.
 */
export async function measureStartup(start: () => Promise<RunningContender>): Promise<{ running: RunningContender; sample: Sample }> {
  const began = performance.now();
  const running = await start();
  try {
    await firstReplyByte(running.port);
  } catch (error) {
    // The caller gets no contender to stop, so it is stopped here.
    await running.stop();
    const output = running.output().trim().split("\n").slice(-5).join("\n");
    throw new Error(`${(error as Error).message}${output === "" ? "" : `; its last lines:\n${output}`}`, { cause: error });
  }

  return { running, sample: { startupMs: performance.now() - began } };
}

function firstReplyByte(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no reply through port ${port} within 10 s`)), 10_000);
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open(socket) {
          socket.write("GET / HTTP/1.0\r\n\r\n");
        },
        data(socket) {
          clearTimeout(timer);
          // Resolved first: end() may run the close handler before it returns.
          resolve();
          socket.end();
        },
        close() {
          // After data this changes nothing: the promise is settled already.
          clearTimeout(timer);
          reject(new Error(`the connection through port ${port} closed without a reply`));
        },
        connectError(_socket, error) {
          clearTimeout(timer);
          reject(error);
        },
      },
    }).catch(reject);
  });
}

function descriptorCount(pids: readonly number[]): number {
  let count = 0;
  for (const pid of pids) {
    try {
      count += readdirSync(`/proc/${pid}/fd`).length;
    } catch {
      // The process is gone.
    }
  }

  return count;
}

/**
 * Resident memory with `count` idle connections: a child process opens them through the
 * balancer to the HTTP backend and sends nothing. Waits until the backend has accepted them all,
 * then reads the balancer's RSS. Returns RSS before and after, and bytes per connection.
 */
export async function measureIdleMemory(running: RunningContender, backend: StartedProcess, count: number): Promise<Sample> {
  const pids = running.pids();
  const rssBefore = rssBytes(pids);
  const backendDescriptors = descriptorCount(backend.tree());
  const clients = startProcess([process.execPath, `${import.meta.dir}/idle-clients.ts`, String(running.port), String(count)], undefined, "pipe");
  try {
    const line = await firstLine(clients, 60_000);
    if (!line.startsWith("ready")) {
      throw new Error(`idle clients: ${line}`);
    }
    // Wait until the backend has every connection, or until its count stops growing for 3 s
    // (a balancer at its own connection limit); memory is then divided by what it holds.
    let held = 0;
    let grewAt = performance.now();
    while (held < count && performance.now() - grewAt < 3000) {
      await Bun.sleep(50);
      const now = descriptorCount(backend.tree()) - backendDescriptors;
      if (now > held) {
        held = now;
        grewAt = performance.now();
      }
    }
    if (held <= 0) {
      throw new Error(`the backend received none of the ${count} idle connections`);
    }
    // Let lazily freed buffers and the allocator settle before reading RSS.
    await Bun.sleep(1000);
    const rssAfter = rssBytes(running.pids());

    return { rssIdleMiB: rssBefore / 2 ** 20, rssLoadedMiB: rssAfter / 2 ** 20, bytesPerIdleConnection: (rssAfter - rssBefore) / held, idleHeld: Math.min(held, count) };
  } finally {
    (clients.process.stdin as import("bun").FileSink).end();
    await Promise.race([clients.process.exited, Bun.sleep(5000)]);
    await clients.stop();
  }
}

async function firstLine(child: StartedProcess, timeoutMs: number): Promise<string> {
  const reader = (child.process.stdout as ReadableStream<Uint8Array>).getReader();
  let text = "";
  const deadline = Bun.sleep(timeoutMs).then(() => undefined);
  while (!text.includes("\n")) {
    const chunk = await Promise.race([reader.read(), deadline]);
    if (chunk === undefined) {
      throw new Error(`no output line within ${timeoutMs} ms: ${child.stderr().trim()}`);
    }
    if (chunk.done) {
      throw new Error(`exited without an output line: ${child.stderr().trim()}`);
    }
    text += new TextDecoder().decode(chunk.value);
  }
  reader.releaseLock();

  return text.slice(0, text.indexOf("\n"));
}

/**
 * Correctness check: sends 1 MiB of patterned bytes through the balancer to an echo
 * backend, half-closes, and expects every byte back in order followed by a FIN. Returns
 * undefined when it passes, or what went wrong.
 */
export async function checkRelay(port: number): Promise<string | undefined> {
  const payload = new Uint8Array(1 << 20);
  for (let i = 0; i < payload.length; i++) {
    payload[i] = (i * 31 + (i >> 8)) & 0xff;
  }

  const received: Uint8Array[] = [];
  let receivedBytes = 0;
  let offset = 0;
  let ended = false;
  let closed = false;
  let closeError: Error | undefined;
  const push = (socket: Socket<undefined>): void => {
    while (offset < payload.length) {
      const written = socket.write(payload.subarray(offset));
      if (written <= 0) {
        return;
      }
      offset += written;
    }
    socket.shutdown();
  };

  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    allowHalfOpen: true,
    socket: {
      open: push,
      drain: push,
      data(_socket, chunk) {
        received.push(new Uint8Array(chunk));
        receivedBytes += chunk.byteLength;
      },
      end() {
        ended = true;
      },
      close(_socket, error) {
        closed = true;
        closeError = error;
      },
    },
  });

  const deadline = performance.now() + 15_000;
  while (!ended && !closed && performance.now() < deadline) {
    await Bun.sleep(5);
  }
  socket.terminate();

  // Bun 1.4 reports a FIN on a socket whose write side is already shut down as a close
  // without an error and no end event, so that counts as a FIN too.
  if (closeError !== undefined) {
    return `closed with ${closeError.message} after ${receivedBytes} of ${payload.length} bytes`;
  }
  if (!ended && !closed) {
    return `no FIN within 15 s; ${receivedBytes} of ${payload.length} bytes back`;
  }
  if (receivedBytes !== payload.length) {
    return `received ${receivedBytes} of ${payload.length} bytes before the FIN`;
  }
  const joined = Buffer.concat(received);
  if (!joined.equals(Buffer.from(payload))) {
    return "the echoed bytes differ from the bytes sent";
  }

  return undefined;
}
