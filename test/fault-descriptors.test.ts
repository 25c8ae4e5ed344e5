import { expect, test } from "bun:test";
import type { Socket } from "bun";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cpuTicks, EchoBackend, echoingClient, echoes, FaultProcess, openDescriptors, receivingClient } from "./support/fault-peers.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { waitFor } from "./support/wait.ts";

const directory = tempDirectory("tinylb-fault-descriptors-");

const DESCRIPTOR_LIMIT = 64;
/** More clients than the limit can hold, since each relayed connection takes two descriptors. */
const CLIENTS = 80;

test.each([
  ["one thread", 1],
  ["two threads", 2],
])("descriptor exhaustion pauses accepting without spinning, %s", async (_name, workers) => {
  const backend = new EchoBackend();
  await using tinylb = new FaultProcess(["--listen", "127.0.0.1:0", "--backend", `echo=${backend.target}`, "--workers", String(workers)], { descriptorLimit: DESCRIPTOR_LIMIT });
  const held: Socket<{ received: string }>[] = [];
  try {
    const port = await tinylb.port();

    // A client that is not served waits in the backlog for the 1 s of echoingClient, so the
    // loop stops after a few of them rather than trying all CLIENTS.
    let refused = 0;
    for (let i = 0; i < CLIENTS && refused < 3; i++) {
      const client = await echoingClient(port, `client ${i}\n`);
      if (client === undefined) {
        refused++;
      } else {
        held.push(client);
      }
    }
    console.log(`${held.length} clients served under ulimit -n ${DESCRIPTOR_LIMIT} before ${refused} were not; tinylb has ${openDescriptors(tinylb.pid)} descriptors open`);
    expect(held.length).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
    // Each thread stops its own listener, and logs that once.
    expect(tinylb.countLines("file descriptor limit nearly reached")).toBeGreaterThanOrEqual(1);
    expect(tinylb.countLines("file descriptor limit nearly reached")).toBeLessThanOrEqual(workers);
    expect(tinylb.stderr).toContain("stopped accepting clients until descriptors are free; raise ulimit -n (LimitNOFILE= under systemd), or cap clients below the limit with --max-connections");

    // At the limit, with a client retrying every 50 ms, tinylb must stay idle.
    const before = cpuTicks(tinylb.pid);
    const startedAt = performance.now();
    while (performance.now() - startedAt < 2000) {
      await echoingClient(port, "retry\n");
      await Bun.sleep(50);
    }
    const ticks = cpuTicks(tinylb.pid) - before;
    console.log(`CPU at the limit: ${ticks} clock ticks in 2 s (100 ticks per second is one core)`);
    expect(ticks).toBeLessThan(20);

    // Connections accepted before the limit keep working.
    for (const [index, client] of held.entries()) {
      expect(await echoes(client, `again ${index}\n`)).toBe(true);
    }

    // Freeing descriptors brings the listener back.
    for (const client of held.splice(0, Math.ceil(held.length / 2))) {
      client.end();
    }
    let resumed: Socket<{ received: string }> | undefined;
    await waitFor("a new client to be served", async () => {
      resumed = await echoingClient(port, "after\n");

      return resumed !== undefined;
    }, 15_000);
    held.push(resumed!);
    expect(tinylb.countLines("file descriptors are free again; accepting clients")).toBeGreaterThanOrEqual(1);
    expect(tinylb.running).toBe(true);
  } finally {
    for (const client of held) {
      client.terminate();
    }
    backend.stop();
  }
}, 60_000);

/** Connects echoing clients until one is not served, which means the descriptor guard stopped accepting, and returns the served ones. */
async function clientsUntilPause(tinylb: FaultProcess, port: number): Promise<Socket<{ received: string }>[]> {
  const served: Socket<{ received: string }>[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    const client = await echoingClient(port, `client ${i}\n`);
    if (client === undefined) {
      break;
    }
    served.push(client);
  }
  await waitFor("the pause line", () => tinylb.countLines("file descriptor limit nearly reached") === 1);

  return served;
}

test("descriptor exhaustion keeps new clients in the backlog", async () => {
  const backend = new EchoBackend();
  await using tinylb = new FaultProcess(["--listen", "127.0.0.1:0", "--backend", `echo=${backend.target}`], { descriptorLimit: DESCRIPTOR_LIMIT });
  const held: Socket<{ received: string }>[] = [];
  let waiting: Socket<{ received: string }> | undefined;
  try {
    const port = await tinylb.port();
    held.push(...(await clientsUntilPause(tinylb, port)));

    // The port is still tinylb's and listening, so the connect completes in the backlog rather than being refused.
    waiting = await receivingClient(port);
    waiting.write("waited\n");
    await Bun.sleep(500);
    expect(waiting.data.received).toBe("");

    for (const client of held.splice(0, Math.ceil(held.length / 2))) {
      client.end();
    }
    const served = waiting;
    await waitFor("the waiting client to be served", () => served.data.received.includes("waited\n"), 15_000);
    expect(tinylb.countLines("file descriptors are free again; accepting clients")).toBe(1);
    expect(tinylb.countLines("binding the address again")).toBe(0);
  } finally {
    waiting?.terminate();
    for (const client of held) {
      client.terminate();
    }
    backend.stop();
  }
}, 60_000);

/** Returns "connected" or the error code of a TCP connect to `port`. */
async function tryConnect(port: number): Promise<string> {
  try {
    const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {}, error() {} } });
    socket.terminate();

    return "connected";
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  }
}

test("a failed Unix rebind keeps the held TCP port", async () => {
  const path = join(tempDirectory("tinylb-held-mixed-"), "lb.sock");
  const backend = new EchoBackend();
  await using tinylb = new FaultProcess(["--listen", "127.0.0.1:0", "--listen", `unix:${path}`, "--backend", `echo=${backend.target}`], { descriptorLimit: DESCRIPTOR_LIMIT });
  const held: Socket<{ received: string }>[] = [];
  let squatter: ReturnType<typeof Bun.listen> | undefined;
  try {
    const port = await tinylb.port();
    held.push(...(await clientsUntilPause(tinylb, port)));
    expect(await tryConnect(port)).toBe("connected");

    // Another process takes the Unix path while tinylb's Unix listener is closed, so binding it again fails.
    rmSync(path, { force: true });
    squatter = Bun.listen({ unix: path, socket: { data() {} } });
    for (const client of held.splice(0, Math.ceil(held.length / 2))) {
      client.terminate();
    }
    await waitFor("a failed rebind", () => tinylb.countLines("binding the listeners again failed") >= 1, 15_000);

    expect(await tryConnect(port)).toBe("connected");
  } finally {
    squatter?.stop(true);
    for (const client of held) {
      client.terminate();
    }
    backend.stop();
  }
}, 60_000);

/** Runs `dist/tinylb ARGS` under `ulimit -n LIMIT` until it exits, and returns its exit code and stderr. */
async function runUnderLimit(limit: number, args: string[]): Promise<{ exitCode: number; stderr: string }> {
  await using tinylb = new FaultProcess(args, { descriptorLimit: limit });
  const exitCode = await tinylb.process.exited;

  return { exitCode, stderr: tinylb.stderr };
}

test.each([
  ["--workers 8", ["--workers", "8"], 32, "--workers 8 needs at least"],
  ["--workers 16", ["--workers", "16"], 20, "--workers 16 needs at least"],
  ["one thread", [], 12, "the balancer needs at least"],
  ["one thread", [], 8, "the balancer needs at least"],
])("a descriptor limit too low for %s exits 2 before starting", async (_name, flags, limit, detail) => {
  const args = ["--listen", "127.0.0.1:0", "--backend", "a=127.0.0.1:1", ...flags];

  const start = await runUnderLimit(limit, args);
  const check = await runUnderLimit(limit, ["check", ...args]);

  expect(start.stderr).toStartWith(`tinylb: ${detail}`);
  expect(start.stderr).toContain(`but the descriptor limit is ${limit}; raise ulimit -n (LimitNOFILE= under systemd)`);
  expect(start.stderr.trim().split("\n")).toHaveLength(1);
  expect(start.exitCode).toBe(2);
  expect(check.stderr).toBe(start.stderr);
  expect(check.exitCode).toBe(2);
}, 30_000);

test("a descriptor limit too low for workers in a file names the file", async () => {
  const config = join(directory, "workers.yaml");
  writeFileSync(config, "listen: 127.0.0.1:0\nworkers: 8\nbackends: [{ id: a, target: 127.0.0.1:1 }]\n");

  const start = await runUnderLimit(32, ["--config", config]);
  const check = await runUnderLimit(32, ["check", "--config", config]);

  expect(start.stderr).toStartWith(`tinylb: workers: 8 (in ${config}) needs at least `);
  expect(start.stderr).toEndWith("but the descriptor limit is 32; raise ulimit -n (LimitNOFILE= under systemd) or lower workers\n");
  expect(start.exitCode).toBe(2);
  expect(check.stderr).toBe(start.stderr);
  expect(check.exitCode).toBe(2);
}, 30_000);

test("the descriptor limit counts probed backends", async () => {
  const backends = ["a", "b", "c"].flatMap((id, index) => ["--backend", `${id}=127.0.0.1:${index + 1}`]);
  const neededFor = async (flags: string[]): Promise<{ needed: number; stderr: string }> => {
    const { stderr } = await runUnderLimit(8, ["--listen", "127.0.0.1:0", ...backends, ...flags]);

    return { needed: Number(/needs at least (\d+) file descriptors/.exec(stderr)?.[1]), stderr };
  };

  const unprobed = await neededFor([]);
  const probed = await neededFor(["--probe", "tcp"]);

  expect(probed.needed).toBe(unprobed.needed + 3);
  expect(probed.stderr).toContain(`needs at least ${probed.needed} file descriptors to probe 3 backends and serve one connection`);
}, 30_000);

test("a reload probing more backends than the limit allows is rejected", async () => {
  const config = join(directory, "probed.yaml");
  const fileOf = (count: number): string => {
    const entries = Array.from({ length: count }, (_, index) => `  - { id: b${index}, target: "127.0.0.1:${index + 1}" }`);

    return ["listen: 127.0.0.1:0", "probe: { kind: tcp, interval: 60s }", "backends:", ...entries, ""].join("\n");
  };
  writeFileSync(config, fileOf(3));
  // The limit a start with 60 probed backends needs is above 64.
  writeFileSync(join(directory, "probed-60.yaml"), fileOf(60));
  const rejectedStart = await runUnderLimit(64, ["check", "--config", join(directory, "probed-60.yaml")]);
  expect(rejectedStart.stderr).toContain("to probe 60 backends");
  expect(rejectedStart.exitCode).toBe(2);

  await using tinylb = new FaultProcess(["--config", config, "--no-watch-config"], { descriptorLimit: 64 });
  await tinylb.port();
  writeFileSync(config, fileOf(60));
  tinylb.process.kill("SIGHUP");
  await waitFor("the rejected reload", () => tinylb.stderr.includes("config reload rejected; keeping the last good backend set"));

  expect(tinylb.stderr).toContain("to probe 60 backends and serve one connection, but the descriptor limit is 64; probe fewer backends, or raise ulimit -n (LimitNOFILE= under systemd) and restart");
  // The start applied its set once, and the rejected reload changed nothing.
  expect(tinylb.countLines("backend set changed")).toBe(1);
  expect(tinylb.running).toBe(true);

  // A reload that fits is still applied.
  writeFileSync(config, fileOf(4));
  tinylb.process.kill("SIGHUP");
  await waitFor("the applied reload", () => tinylb.countLines("backend set changed") === 2);
  expect(tinylb.stderr).toContain('added="b3=127.0.0.1:4"');
}, 30_000);

test.each([
  ["one thread", 1],
  ["four threads", 4],
])("the descriptor limit a start names serves clients, %s", async (_name, workers) => {
  const backend = new EchoBackend();
  const args = ["--listen", "127.0.0.1:0", "--backend", `echo=${backend.target}`, "--workers", String(workers)];
  try {
    const rejected = await runUnderLimit(8, args);
    const needed = Number(/needs at least (\d+) file descriptors/.exec(rejected.stderr)?.[1]);
    expect(needed).toBeGreaterThan(8);
    expect((await runUnderLimit(needed - 1, args)).exitCode).toBe(2);

    await using tinylb = new FaultProcess(args, { descriptorLimit: needed });
    const port = await tinylb.port();
    // The estimate is logged right after the `tinylb started` line that port() waits for.
    await waitFor("the start-up estimate", () => tinylb.stderr.includes("leaves room for about this many connections"));
    const room = Number(/leaves room for about this many connections .*connections=(\d+)/.exec(tinylb.stderr)?.[1]);
    expect(room).toBeGreaterThanOrEqual(1);
    const client = await echoingClient(port, "client\n");
    expect(client).toBeDefined();
    client!.terminate();
    expect(tinylb.countLines("file descriptor limit nearly reached")).toBe(0);
  } finally {
    backend.stop();
  }
}, 30_000);

/**
 * A backend that echoes clients and replies to an HTTP probe after `delayMs`, so that each probe
 * holds its socket for that long. It is a stand-in: no real server mixes the two.
 */
function slowProbeBackend(delayMs: number): { target: string; stop(): void } {
  const listener = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(socket, chunk) {
        if (!chunk.toString("latin1").startsWith("GET ")) {
          socket.write(chunk);

          return;
        }
        setTimeout(() => socket.end("HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"), delayMs);
      },
      error() {},
    },
  });

  return { target: `127.0.0.1:${listener.port}`, stop: () => listener.stop(true) };
}

test("probes at the descriptor limit keep backends healthy", async () => {
  // Held clients bring the process to the descriptor guard, which keeps 8 descriptors free.
  // 24 probes that each wait 80 ms for their reply need more than that at once, so some
  // fail in socket(2) with EMFILE, which Bun 1.4.4 reports as ECONNREFUSED. That used to mark
  // every backend unhealthy.
  const limit = 128;
  const backends = Array.from({ length: 24 }, () => slowProbeBackend(80));
  const flags = backends.flatMap((backend, index) => ["--backend", `b${index}=${backend.target}`]);
  const probe = ["--probe", "http", "--probe-path", "/healthz", "--probe-interval", "200ms", "--probe-timeout", "200ms"];
  await using tinylb = new FaultProcess(["--listen", "127.0.0.1:0", ...flags, ...probe], { descriptorLimit: limit });
  const held: Socket<{ received: string }>[] = [];
  try {
    const port = await tinylb.port();
    const deadline = performance.now() + 20_000;
    for (let i = 0; i < limit && tinylb.countLines("too many open files (EMFILE)") === 0 && performance.now() < deadline; i++) {
      const client = await echoingClient(port, `client ${i}\n`);
      if (client === undefined) {
        // The guard stopped the listener: hold what was accepted and let the probes run.
        await Bun.sleep(100);
        continue;
      }
      held.push(client);
    }
    await waitFor("a probe to run out of descriptors", () => tinylb.countLines("too many open files (EMFILE)") > 0);
    // Five more probe rounds at the limit.
    await Bun.sleep(1000);
    console.log(`${held.length} clients held under ulimit -n ${limit} with 24 slow probes; ${openDescriptors(tinylb.pid)} descriptors open`);

    expect(tinylb.stderr).toContain("a connect failed for lack of a file descriptor, not because of the backend, so its health is unchanged; raise ulimit -n (LimitNOFILE= under systemd)");
    expect(tinylb.stderr).toContain(`descriptorLimit=${limit}`);
    expect(tinylb.countLines("backend is unhealthy")).toBe(0);
    expect(tinylb.countLines("ECONNREFUSED")).toBe(0);
    expect(tinylb.countLines("degraded")).toBe(0);

    // Once descriptors are free, the backends still serve.
    for (const client of held.splice(0, Math.ceil(held.length / 2))) {
      client.terminate();
    }
    for (const [index, client] of held.entries()) {
      expect(await echoes(client, `again ${index}\n`)).toBe(true);
    }
    expect(tinylb.running).toBe(true);
  } finally {
    for (const client of held) {
      client.terminate();
    }
    for (const backend of backends) {
      backend.stop();
    }
  }
}, 60_000);
