/**
 * End-to-end tests of the connection caps of the admin API and the metrics server: a flood of
 * slow connections to either, under a low descriptor limit, leaves the listener relaying and
 * the other server responding.
 */
import { expect, test } from "bun:test";
import type { Socket } from "bun";
import { join } from "node:path";
import { httpConnectionCap } from "../src/http-connection-cap.ts";
import { cpuTicks, EchoBackend, echoes, echoingClient, FaultProcess } from "./support/fault-peers.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { waitFor } from "./support/wait.ts";

const directory = tempDirectory("tinylb-control-flood-");

/** Below what the flood needs without the caps: 400 connections at 200 descriptors starved the listener. */
const DESCRIPTOR_LIMIT = 200;
const FLOOD = 400;
/** The cap of each server under that limit: 12. */
const CAP = httpConnectionCap(DESCRIPTOR_LIMIT);

/** A flood connection and whether tinylb closed it; `socket` is undefined when the connect failed. */
interface FloodClient {
  socket?: Socket<undefined>;
  closed: boolean;
}

/**
 * Opens `count` connections that each send the start of a request and then nothing more, as a
 * slowloris client does. A connect can fail when the accept queue is full, which a Unix socket
 * reports at once (EAGAIN); such a client counts as closed.
 */
async function flood(count: number, connect: (handler: { data(): void; close(): void; error(): void }) => Promise<Socket<undefined>>): Promise<FloodClient[]> {
  const clients: FloodClient[] = [];
  for (let i = 0; i < count; i++) {
    const client: FloodClient = { closed: false };
    try {
      client.socket = await connect({ data() {}, close: () => (client.closed = true), error() {} });
      client.socket.write("GET /metrics HTTP/1.1\r\nHost: x\r\n");
    } catch {
      client.closed = true;
    }
    clients.push(client);
  }

  return clients;
}

/** Closes every flood connection that is still open. */
function endFlood(clients: FloodClient[]): void {
  for (const client of clients) {
    client.socket?.terminate();
  }
}

function metricsPortOf(stderr: string): number {
  return Number(/metrics server listening .*listener=127\.0\.0\.1:(\d+)/.exec(stderr)?.[1]);
}

async function healthz(url: string, init: RequestInit = {}): Promise<number> {
  try {
    return (await fetch(url, { ...init, signal: AbortSignal.timeout(2000) })).status;
  } catch {
    return 0;
  }
}

test.each([
  ["metrics server", "metrics port"],
  ["admin API", "admin socket"],
] as const)("a flood of the %s's %s leaves the listener relaying", async (subject, _target) => {
  const backend = new EchoBackend();
  const adminPath = join(directory, `${subject === "admin API" ? "admin" : "metrics"}.sock`);
  await using tinylb = new FaultProcess(["--listen", "127.0.0.1:0", "--backend", `echo=${backend.target}`, "--admin", `unix:${adminPath}`, "--metrics", "127.0.0.1:0"], { descriptorLimit: DESCRIPTOR_LIMIT });
  let clients: FloodClient[] = [];
  try {
    const port = await tinylb.port();
    const metricsPort = metricsPortOf(tinylb.stderr);
    const admin = (path: string): Promise<number> => healthz(`http://localhost${path}`, { unix: adminPath } as RequestInit);
    const metrics = (path: string): Promise<number> => healthz(`http://127.0.0.1:${metricsPort}${path}`);

    clients = await flood(FLOOD, (socket) => (subject === "admin API" ? Bun.connect({ unix: adminPath, socket }) : Bun.connect({ hostname: "127.0.0.1", port: metricsPort, socket })));
    await waitFor("the connections over the cap to close", () => clients.filter((client) => client.closed).length >= FLOOD - CAP);
    const open = clients.filter((client) => !client.closed).length;
    const connected = clients.filter((client) => client.socket !== undefined).length;
    console.log(`${subject} flood under ulimit -n ${DESCRIPTOR_LIMIT}: ${open} of ${FLOOD} connections kept open, ${FLOOD - connected} connects failed`);
    expect(open).toBe(CAP);

    // The listener still relays, and the server that was not flooded still responds.
    const relayed = await echoingClient(port, "through the listener\n");
    expect(relayed).toBeDefined();
    relayed!.terminate();
    expect(await (subject === "admin API" ? metrics("/healthz") : admin("/healthz"))).toBe(200);
    expect(tinylb.countLines(`${subject} connection cap reached; new connections are closed at accept`)).toBe(1);

    // Once the flood ends, the flooded server responds again.
    endFlood(clients);
    await waitFor("the info line", () => tinylb.countLines(`${subject} connections are below half the cap again`) === 1);
    expect(await (subject === "admin API" ? admin("/healthz") : metrics("/healthz"))).toBe(200);
    const page = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const counter = subject === "admin API" ? "tinylb_admin_connections_rejected_total" : "tinylb_metrics_connections_rejected_total";
    // A client whose connect failed on its side may still have been accepted and closed by the
    // server, so the count lies between the connected clients over the cap and the whole flood over it.
    const rejected = Number(new RegExp(`\n${counter} (\\d+)\n`).exec(page)?.[1]);
    expect(rejected).toBeGreaterThanOrEqual(connected - CAP);
    expect(rejected).toBeLessThanOrEqual(FLOOD - CAP);
    expect(tinylb.countLines(`${subject} connection cap reached`)).toBe(1);
    expect(tinylb.running).toBe(true);
  } finally {
    endFlood(clients);
    backend.stop();
  }
}, 60_000);

test("flood of both servers under ulimit -n 100 keeps CPU idle", async () => {
  // Two caps of 64 took all 100 descriptors, and accept(2) on both server sockets spun on EMFILE.
  const limit = 100;
  const cap = httpConnectionCap(limit);
  const backend = new EchoBackend();
  const adminPath = join(directory, "both.sock");
  await using tinylb = new FaultProcess(["--listen", "127.0.0.1:0", "--backend", `echo=${backend.target}`, "--admin", `unix:${adminPath}`, "--metrics", "127.0.0.1:0"], { descriptorLimit: limit });
  let clients: FloodClient[] = [];
  try {
    const port = await tinylb.port();
    const metricsPort = metricsPortOf(tinylb.stderr);
    // The start-up estimate of room for connections comes right after the `tinylb started` line.
    await waitFor("the start-up estimate", () => tinylb.stderr.includes("leaves room for about this many connections"));
    expect(tinylb.stderr).toContain(`adminAndMetricsCaps=${2 * cap}`);

    const admin = await flood(FLOOD, (socket) => Bun.connect({ unix: adminPath, socket }));
    const metrics = await flood(FLOOD, (socket) => Bun.connect({ hostname: "127.0.0.1", port: metricsPort, socket }));
    clients = [...admin, ...metrics];
    await waitFor("the connections over the caps to close", () => admin.filter((client) => !client.closed).length <= cap && metrics.filter((client) => !client.closed).length <= cap);

    const before = cpuTicks(tinylb.pid);
    const startedAt = performance.now();
    let relayed = 0;
    while (performance.now() - startedAt < 2000) {
      const client = await echoingClient(port, "during the flood\n");
      if (client !== undefined) {
        relayed++;
        client.terminate();
      }
      await Bun.sleep(50);
    }
    const ticks = cpuTicks(tinylb.pid) - before;
    console.log(`flood of both servers under ulimit -n ${limit}: ${relayed} clients relayed, ${ticks} clock ticks in 2 s`);
    expect(ticks).toBeLessThan(40);
    expect(relayed).toBeGreaterThan(10);
    expect(tinylb.running).toBe(true);
  } finally {
    endFlood(clients);
    backend.stop();
  }
}, 60_000);

test("flood of both servers after clients reach the guard keeps CPU idle", async () => {
  // The descriptor guard used to keep only its reserve of 8 free, less than the two caps of 6:
  // clients held up to the guard left the flood too few descriptors, and accept(2) spun on EMFILE.
  const limit = 100;
  const backend = new EchoBackend();
  const adminPath = join(directory, "guard.sock");
  await using tinylb = new FaultProcess(["--listen", "127.0.0.1:0", "--backend", `echo=${backend.target}`, "--admin", `unix:${adminPath}`, "--metrics", "127.0.0.1:0"], { descriptorLimit: limit });
  const held: Socket<{ received: string }>[] = [];
  let clients: FloodClient[] = [];
  try {
    const port = await tinylb.port();
    const metricsPort = metricsPortOf(tinylb.stderr);
    // Each client holds two descriptors, so 50 clients are more than the limit leaves room for.
    for (let i = 0; i < 50 && tinylb.countLines("file descriptor limit nearly reached") === 0; i++) {
      const client = await echoingClient(port, `client ${i}\n`);
      if (client !== undefined) {
        held.push(client);
      }
    }
    expect(tinylb.countLines("file descriptor limit nearly reached")).toBe(1);
    expect(tinylb.stderr).toContain(`adminAndMetricsCaps=${2 * httpConnectionCap(limit)}`);

    const admin = await flood(100, (socket) => Bun.connect({ unix: adminPath, socket }));
    const metrics = await flood(100, (socket) => Bun.connect({ hostname: "127.0.0.1", port: metricsPort, socket }));
    clients = [...admin, ...metrics];
    await Bun.sleep(500);

    const before = cpuTicks(tinylb.pid);
    await Bun.sleep(2000);
    const ticks = cpuTicks(tinylb.pid) - before;
    console.log(`flood of both servers with ${held.length} clients held under ulimit -n ${limit}: ${ticks} clock ticks in 2 s`);
    expect(ticks).toBeLessThan(40);
    for (const client of held) {
      expect(await echoes(client, "still relayed\n")).toBe(true);
    }
    expect(tinylb.running).toBe(true);
  } finally {
    endFlood(clients);
    for (const client of held) {
      client.terminate();
    }
    backend.stop();
  }
}, 60_000);
