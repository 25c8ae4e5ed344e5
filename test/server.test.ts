import { afterEach, expect, test } from "bun:test";
import type { Socket } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Address } from "../src/address.ts";
import { createBackend } from "../src/backend.ts";
import { DIAL_FAILURE_LINES, FAILURE_LOG_INTERVAL_MS } from "../src/backend-connector.ts";
import { BackendSet } from "../src/backend-set.ts";
import { KEEPALIVE_DELAY_MS } from "../src/deferred-keepalive.ts";
import { Logger } from "../src/logger.ts";
import { Server, type ServerOptions } from "../src/server.ts";
import { TestBackend, TestClient } from "./support/backends.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { FullBacklogListener } from "./support/full-backlog.ts";
import { LogLines } from "./support/log-lines.ts";
import { waitFor } from "./support/wait.ts";

/** Backstop for one test; the waits inside carry the real deadlines. */
const TEST_TIMEOUT_MS = 60_000;
const LOOPBACK: Address = { kind: "tcp", host: "127.0.0.1", port: 0 };

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

function startBackends(ids: string[]): TestBackend[] {
  const backends = ids.map((id) => TestBackend.echo(id));
  cleanup.push(() => backends.forEach((backend) => backend.stop()));

  return backends;
}

function setOf(...pairs: [string, string][]): BackendSet {
  return new BackendSet(pairs.map(([id, target]) => createBackend(id, target)));
}

function setOfBackends(backends: TestBackend[]): BackendSet {
  return setOf(...backends.map((backend): [string, string] => [backend.id, backend.target]));
}

/** Log lines a server wrote, for checks on warnings. */
function captureLog(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];

  return { logger: new Logger({ level: "debug", sink: (line) => lines.push(line) }), lines };
}

async function startServer(set: BackendSet, options: Partial<ServerOptions> = {}): Promise<{ server: Server; port: number }> {
  const server = new Server({ listen: [LOOPBACK], ...options });
  server.applySet(set);
  await server.start();
  cleanup.push(async () => {
    await server.shutdown(0);
    // Leak check: nothing may stay open or dialing once the server is shut down.
    expect(server.activeCount).toBe(0);
  });
  const address = server.listeners[0]!.address;

  return { server, port: address.kind === "tcp" ? address.port : 0 };
}

async function connect(port: number): Promise<TestClient> {
  const client = await TestClient.connect(port);
  cleanup.push(() => client.socket.terminate());

  return client;
}

async function greeting(port: number): Promise<string> {
  const client = await connect(port);
  await waitFor("greeting", () => client.firstLine !== "");
  client.close();

  return client.firstLine;
}

async function echoes(client: TestClient, text: string): Promise<void> {
  client.socket.write(`${text}\n`);
  await waitFor(`echo of "${text}"`, () => client.received.includes(`${text}\n`));
}

/** Returns a TCP target where nothing listens: the local port of a connected client socket, which no listener can take while it is open. */
async function deadTarget(): Promise<string> {
  const holder = startBackends(["port-holder"])[0]!;
  const socket: Socket<undefined> = await Bun.connect({ hostname: "127.0.0.1", port: holder.port, socket: { data() {} } });
  cleanup.push(() => socket.terminate());

  return `127.0.0.1:${socket.localPort}`;
}

test("Server closes clients with a warning when the set is empty", async () => {
  const { logger, lines } = captureLog();
  const { server, port } = await startServer(BackendSet.EMPTY, { logger });

  const client = await connect(port);
  await waitFor("the client to be closed", () => client.ended || client.closed);

  expect(client.received).toBe("");
  expect(lines.some((line) => line.includes("WARN") && line.includes("backend set is empty; closing client"))).toBe(true);
  expect(server.stats.unserved).toBe(1);
  await waitFor("pool to empty", () => server.activeCount === 0);
}, TEST_TIMEOUT_MS);

test("Server sends every connection to a single backend", async () => {
  const backends = startBackends(["only"]);
  const { server, port } = await startServer(setOfBackends(backends));

  for (let i = 0; i < 5; i++) {
    expect(await greeting(port)).toBe("only");
  }
  expect(backends[0]!.accepted).toBe(5);
  await waitFor("pool to empty", () => server.activeCount === 0);
}, TEST_TIMEOUT_MS);

test("Server spreads 20 connections over four backends, five each", async () => {
  const backends = startBackends(["a", "b", "c", "d"]);
  const { server, port } = await startServer(setOfBackends(backends));

  const seen: string[] = [];
  for (let i = 0; i < 20; i++) {
    seen.push(await greeting(port));
  }

  expect(seen.slice(0, 8)).toEqual(["a", "b", "c", "d", "a", "b", "c", "d"]);
  for (const backend of backends) {
    expect(seen.filter((id) => id === backend.id).length).toBe(5);
    expect(backend.accepted).toBe(5);
  }
  await waitFor("pool to empty", () => server.activeCount === 0);
}, TEST_TIMEOUT_MS);

test("Server closes a removed backend's connections and keeps the others", async () => {
  const { logger, lines } = captureLog();
  const backends = startBackends(["a", "b"]);
  const { server, port } = await startServer(setOfBackends(backends), { logger });
  const clients: TestClient[] = [];
  for (let i = 0; i < 4; i++) {
    clients.push(await connect(port));
  }
  await waitFor("greetings", () => clients.every((client) => client.firstLine !== ""));
  const toA = clients.filter((client) => client.firstLine === "a");
  const toB = clients.filter((client) => client.firstLine === "b");
  expect(toA.length).toBe(2);
  expect(toB.length).toBe(2);

  const removedAt = performance.now();
  server.applySet(setOf(["b", backends[1]!.target]));

  await waitFor("clients of a to be closed", () => toA.every((client) => client.closed), 1000);
  expect(performance.now() - removedAt).toBeLessThan(1000);
  await waitFor("backend a to see its sockets closed", () => backends[0]!.open.size === 0, 1000);
  for (const client of toB) {
    await echoes(client, "still here");
    expect(client.closed).toBe(false);
  }
  expect(server.pool.countTarget(backends[0]!.target)).toBe(0);
  expect(server.pool.countTarget(backends[1]!.target)).toBe(2);
  expect(lines.some((line) => line.includes("closed connections of removed target") && line.includes("backend=a") && line.includes("closed=2"))).toBe(true);
  expect(lines.some((line) => line.includes("backend set changed") && line.includes(`b=${backends[1]!.target}`))).toBe(true);

  toB.forEach((client) => client.close());
  await waitFor("pool to empty", () => server.activeCount === 0);
}, TEST_TIMEOUT_MS);

test("Server resets the clients of a removed backend", async () => {
  const backends = startBackends(["a"]);
  const { server, port } = await startServer(setOfBackends(backends));
  const client = await connect(port);
  await waitFor("greeting", () => client.firstLine === "a");

  server.applySet(BackendSet.EMPTY);
  await waitFor("the client to be closed", () => client.closed, 1000);

  expect(client.ended).toBe(false);
  expect((client.closeError as { code?: string } | undefined)?.code).toBe("ECONNRESET");
}, TEST_TIMEOUT_MS);

test("Server closes the old target's connections when an id changes target", async () => {
  const backends = startBackends(["a", "b", "a-new"]);
  const [a, b, aNew] = backends as [TestBackend, TestBackend, TestBackend];
  const { server, port } = await startServer(setOf(["a", a.target], ["b", b.target]));
  const toA = await connect(port);
  const toB = await connect(port);
  await waitFor("greetings", () => toA.firstLine === "a" && toB.firstLine === "b");

  server.applySet(setOf(["a", aNew.target], ["b", b.target]));

  await waitFor("the client of the old target to be closed", () => toA.closed, 1000);
  await echoes(toB, "untouched");
  // The rotation continues after b, so the next client goes to id a at its new target.
  expect(await greeting(port)).toBe("a-new");
  toB.close();
  await waitFor("pool to empty", () => server.activeCount === 0);
}, TEST_TIMEOUT_MS);

test("Server keeps connections whose target another id still dials", async () => {
  const backends = startBackends(["shared"]);
  const target = backends[0]!.target;
  const { server, port } = await startServer(setOf(["a", target], ["b", target]));
  const client = await connect(port);
  await waitFor("greeting", () => client.firstLine === "shared");

  server.applySet(setOf(["b", target]));
  server.applySet(setOf(["c", target]));

  await echoes(client, "same target");
  expect(client.closed).toBe(false);
  client.close();
}, TEST_TIMEOUT_MS);

test("Server never touches remaining targets across many updates", async () => {
  const backends = startBackends(["a", "b", "c"]);
  const [a, b, c] = backends as [TestBackend, TestBackend, TestBackend];
  const { server, port } = await startServer(setOf(["a", a.target]));
  const client = await connect(port);
  await waitFor("greeting", () => client.firstLine === "a");

  for (let round = 0; round < 100; round++) {
    const set = round % 3 === 0 ? setOf(["a", a.target], ["b", b.target]) : round % 3 === 1 ? setOf(["a", a.target], ["c", c.target]) : setOf(["a", a.target]);
    server.applySet(set);
  }

  await echoes(client, "after 100 updates");
  expect(client.closed).toBe(false);
  expect(server.stats.setChanges).toBe(101);
  client.close();
}, TEST_TIMEOUT_MS);

test("Server skips a dead backend", async () => {
  const { logger, lines } = captureLog();
  const backends = startBackends(["b", "c"]);
  const dead = await deadTarget();
  const { server, port } = await startServer(setOf(["a", dead], ["b", backends[0]!.target], ["c", backends[1]!.target]), {
    logger,
    connectTimeoutMs: 3000,
  });

  const seen: string[] = [];
  for (let i = 0; i < 6; i++) {
    const startedAt = performance.now();
    seen.push(await greeting(port));
    expect(performance.now() - startedAt).toBeLessThan(3000);
  }

  expect(new Set(seen)).toEqual(new Set(["b", "c"]));
  // After one failed dial the back-off tries a last, so later clients may never dial it.
  expect(server.stats.backend("a").dialFailures).toBeGreaterThanOrEqual(1);
  const warning = lines.find((line) => /WARN +dial failed .* backend=a /.test(line));
  expect(warning).toContain(`target=${dead} `);
  expect(warning).toContain("ECONNREFUSED");
  expect(warning).toContain("client=127.0.0.1:");
  await waitFor("pool to empty", () => server.activeCount === 0);
}, TEST_TIMEOUT_MS);

test("Server logs a dial failure with a constant message", async () => {
  const lines: string[] = [];
  const logger = new Logger({ level: "debug", format: "json", sink: (line) => lines.push(line) });
  const dead = await deadTarget();
  const backends = startBackends(["b"]);
  const { server, port } = await startServer(setOf(["a", dead], ["b", backends[0]!.target]), { logger });

  // The rotation starts at a, so the first client dials a and fails over to b.
  expect(await greeting(port)).toBe("b");

  const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  const failure = records.find((record) => record.msg === "dial failed");
  expect(failure).toBeDefined();
  expect(failure!.level).toBe("warn");
  expect(failure!.backend).toBe("a");
  expect(failure!.target).toBe(dead);
  expect(failure!.err).toBe("connection refused (ECONNREFUSED)");
  expect(failure!.client).toMatch(/^127\.0\.0\.1:\d+$/);
  expect(failure!.next).toBe("b");
  await waitFor("pool to empty", () => server.activeCount === 0);
}, TEST_TIMEOUT_MS);

test("Server debug lines name the listener and backend port", async () => {
  const { logger, lines } = captureLog();
  // A backend that records the client port of each connection it accepts: tinylb's local port.
  const peerPorts: number[] = [];
  const backend = Bun.listen<undefined>({ hostname: "127.0.0.1", port: 0, socket: { open: (socket) => void peerPorts.push(socket.remotePort), data() {} } });
  cleanup.push(() => backend.stop(true));
  const { port } = await startServer(setOf(["a", `127.0.0.1:${backend.port}`]), { logger });

  const client = await connect(port);
  await waitFor("the backend to accept", () => peerPorts.length === 1);
  client.close();
  await waitFor("the close line", () => lines.some((line) => line.includes("connection closed")));

  const opened = lines.find((line) => line.includes("DEBUG connection opened"));
  expect(opened).toContain(` listener=127.0.0.1:${port} `);
  expect(opened).toEndWith(` backendLocal=127.0.0.1:${peerPorts[0]}`);
  const closed = lines.find((line) => line.includes("DEBUG connection closed"));
  expect(closed).toContain(` listener=127.0.0.1:${port} `);
}, TEST_TIMEOUT_MS);

test("Server info level builds no listener field", async () => {
  const lines: string[] = [];
  const logger = new Logger({ level: "info", sink: (line) => lines.push(line) });
  const backends = startBackends(["a"]);
  const { server, port } = await startServer(setOfBackends(backends), { logger });

  const client = await connect(port);
  await waitFor("greeting", () => client.firstLine === "a");
  const [connection] = server.pool.connections();
  expect(connection?.listener).toBeUndefined();
  client.close();
  await waitFor("pool to empty", () => server.activeCount === 0);
}, TEST_TIMEOUT_MS);

test("Server closes the client after trying every backend once", async () => {
  const { logger, lines } = captureLog();
  const deadA = await deadTarget();
  const deadB = await deadTarget();
  const { server, port } = await startServer(setOf(["a", deadA], ["b", deadB]), { logger });

  const client = await connect(port);
  await waitFor("the client to be closed", () => client.ended || client.closed);

  expect(client.received).toBe("");
  expect(server.stats.backend("a").dialFailures).toBe(1);
  expect(server.stats.backend("b").dialFailures).toBe(1);
  expect(server.stats.unserved).toBe(1);
  // The dial failures themselves; the unhealthy flips that quote them are warnings too.
  expect(lines.filter((line) => /WARN +dial failed /.test(line)).length).toBe(2);
  expect(lines.some((line) => line.includes("ERROR") && line.includes("no backend could be dialled; closing client") && line.includes("tried=2"))).toBe(true);
  await waitFor("pool to empty", () => server.activeCount === 0);
}, TEST_TIMEOUT_MS);

test("Server rate-limits dial failure lines", async () => {
  const { logger, lines } = captureLog();
  const deadA = await deadTarget();
  const deadB = await deadTarget();
  const { server, port } = await startServer(setOf(["a", deadA], ["b", deadB]), { logger });

  for (let i = 0; i < 20; i++) {
    const client = await connect(port);
    await waitFor("the client to be closed", () => client.ended || client.closed);
  }

  expect(server.stats.unserved).toBe(20);
  // One warning per backend id and one error within FAILURE_LOG_INTERVAL_MS, not one per client.
  expect(lines.filter((line) => /WARN +dial failed .* backend=a /.test(line)).length).toBe(1);
  expect(lines.filter((line) => /WARN +dial failed .* backend=b /.test(line)).length).toBe(1);
  expect(lines.filter((line) => line.includes("ERROR") && line.includes("no backend could be dialled")).length).toBe(1);
  await waitFor("pool to empty", () => server.activeCount === 0);
}, TEST_TIMEOUT_MS);

test("Server budgets dial failure lines of a mass failover", async () => {
  const { logger, lines } = captureLog();
  const port = (await deadTarget()).split(":")[1];
  // A set of over 1,024 ids, each on its own loopback address, where nothing listens on the
  // port of a client socket.
  const ids = Array.from({ length: 1100 }, (_, index): [string, string] => [`d${index}`, `127.0.${1 + Math.floor(index / 250)}.${1 + (index % 250)}:${port}`]);
  const { server, port: listenPort } = await startServer(setOf(...ids), { logger });
  const warnings = (): number => lines.filter((line) => /WARN +dial failed /.test(line)).length;

  const first = await connect(listenPort);
  await waitFor("the first client to be closed", () => first.ended || first.closed);
  // All ids together log DIAL_FAILURE_LINES warnings per interval; the rest go to debug.
  expect(warnings()).toBe(DIAL_FAILURE_LINES);
  expect(lines.filter((line) => line.includes("more backends failed to dial than are logged"))).toHaveLength(1);
  // Every backend is cooling down after its failed dial now, so the next client is closed
  // without a dial.
  const second = await connect(listenPort);
  await waitFor("the second client to be closed", () => second.ended || second.closed);

  expect(server.stats.unserved).toBe(2);
  expect(warnings()).toBe(DIAL_FAILURE_LINES);
  expect(lines.filter((line) => /dial failed .* backend=d0 /.test(line)).length).toBe(1);
  expect(lines.filter((line) => /WARN +every backend failed a dial moments ago and is cooling down; closing client/.test(line))).toHaveLength(1);
}, TEST_TIMEOUT_MS);

test("Server logs a retrying backend's dial failures at debug", async () => {
  const { logger, lines } = captureLog();
  const clock = new FakeClock();
  const deadA = await deadTarget();
  const deadB = await deadTarget();
  const { server, port } = await startServer(setOf(["a", deadA]), { logger, clock });
  const count = (pattern: RegExp): number => lines.filter((line) => pattern.test(line)).length;

  // a is healthy, so its first failed dial is a warning, and a back-off starts.
  const first = await connect(port);
  await waitFor("the first client to be closed", () => first.ended || first.closed);
  expect(count(/WARN +dial failed .* backend=a /)).toBe(1);

  // Past the back-off, a is retrying, which means it is handed out again but not reported
  // healthy. The rate limit of a's failure lines has run out too, so only the debug level for
  // retrying backends keeps its next failure from being a warning.
  clock.advance(FAILURE_LOG_INTERVAL_MS);
  expect(server.health.state("a")?.condition).toBe("retrying");
  // b is new to the set, so it starts healthy.
  server.applySet(setOf(["a", deadA], ["b", deadB]));
  expect(server.health.isReportedHealthy(server.set.get("b")!)).toBe(true);

  const second = await connect(port);
  await waitFor("the second client to be closed", () => second.ended || second.closed);

  expect(server.stats.backend("a").dialFailures).toBe(2);
  expect(server.stats.backend("b").dialFailures).toBe(1);
  expect(count(/WARN +dial failed .* backend=a /)).toBe(1);
  expect(count(/DEBUG +dial failed .* backend=a /)).toBe(1);
  expect(count(/WARN +dial failed .* backend=b /)).toBe(1);
  expect(count(/DEBUG +dial failed .* backend=b /)).toBe(0);
}, TEST_TIMEOUT_MS);

test("Server skips a backend that never completes the connect", async () => {
  const { logger, lines } = captureLog();
  const backends = startBackends(["b"]);
  const silent = await FullBacklogListener.start();
  cleanup.push(() => silent.stop());
  const connectTimeoutMs = 1000;
  const { server, port } = await startServer(setOf(["a", silent.target], ["b", backends[0]!.target]), { logger, connectTimeoutMs });

  for (let i = 0; i < 2; i++) {
    const startedAt = performance.now();
    expect(await greeting(port)).toBe("b");
    // Served by b after at most one connect timeout spent on a.
    expect(performance.now() - startedAt).toBeLessThan(connectTimeoutMs + 2000);
  }

  expect(server.stats.backend("a").dialFailures).toBe(1);
  expect(lines.some((line) => /WARN +dial failed /.test(line) && line.includes(`backend=a target=${silent.target} err="connect timed out after 1000 ms"`))).toBe(true);
  await waitFor("pool to empty", () => server.activeCount === 0);
}, TEST_TIMEOUT_MS);

test("Server closes a dial that completes after its target left the set", async () => {
  const { logger, lines } = captureLog();
  const backends = startBackends(["b"]);
  const slow = await FullBacklogListener.start();
  cleanup.push(() => slow.stop());
  const { server, port } = await startServer(setOf(["a", slow.target], ["b", backends[0]!.target]), { logger, connectTimeoutMs: 10_000 });

  // The first client is sent to a, whose SYN the full accept queue drops.
  const client = await connect(port);
  await waitFor("the dial to a to start", () => server.activeCount === 1 && server.pool.size === 0);
  server.applySet(setOf(["b", backends[0]!.target]));

  // Free the queue: the kernel completes the retried connect, and tinylb must close it at once.
  slow.accept();
  await waitFor("the client to fail over to b", () => client.firstLine === "b", 15_000);
  slow.accept();
  await waitFor("the late connection to a to be closed", () => slow.events.includes("accepted") && slow.events.some((event) => event === "closed" || event === "reset"), 5000);

  expect(lines.some((line) => line.includes("its target left the backend set while the dial was in flight"))).toBe(true);
  expect(server.pool.countTarget(slow.target)).toBe(0);
  client.close();
  await waitFor("pool to empty", () => server.activeCount === 0);
}, TEST_TIMEOUT_MS);

test("Server fails a dial over when its target leaves", async () => {
  const { logger, lines } = captureLog();
  const backends = startBackends(["b"]);
  const silent = await FullBacklogListener.start();
  cleanup.push(() => silent.stop());
  const connectTimeoutMs = 10_000;
  const { server, port } = await startServer(setOf(["a", silent.target], ["b", backends[0]!.target]), { logger, connectTimeoutMs });

  // The first client is sent to a, whose SYN the full accept queue drops, so its connect hangs.
  const client = await connect(port);
  await waitFor("the dial to a to start", () => server.activeCount === 1 && server.pool.size === 0);
  const removedAt = performance.now();
  server.applySet(setOf(["b", backends[0]!.target]));

  // Removal gives the dial up at once rather than after the connect timeout.
  await waitFor("the client to fail over to b", () => client.firstLine === "b", connectTimeoutMs);
  expect(performance.now() - removedAt).toBeLessThan(connectTimeoutMs / 2);
  // The set change ended the dial, so it is no sign of a's health.
  expect(server.stats.backend("a").dialFailures).toBe(0);
  expect(lines.filter((line) => /WARN +dial failed .* backend=a /.test(line))).toEqual([]);
  client.close();
  await waitFor("pool to empty", () => server.activeCount === 0);
}, TEST_TIMEOUT_MS);

test("Server closes a connect that completes after its timeout", async () => {
  const backends = startBackends(["b"]);
  const slow = await FullBacklogListener.start();
  cleanup.push(() => slow.stop());
  const { server, port } = await startServer(setOf(["a", slow.target], ["b", backends[0]!.target]), { connectTimeoutMs: 300 });

  // The dial to a times out and the client is served by b.
  const client = await connect(port);
  await waitFor("the client to fail over to b", () => client.firstLine === "b", 5000);

  // Free the queue: the kernel completes the abandoned connect, and tinylb must close it.
  slow.accept();
  slow.accept();
  await waitFor("the late connection to a to be closed", () => slow.events.includes("accepted") && slow.events.some((event) => event === "closed" || event === "reset"), 10_000);

  expect(server.pool.countTarget(slow.target)).toBe(0);
  await echoes(client, "still on b");
  client.close();
  await waitFor("pool to empty", () => server.activeCount === 0);
}, TEST_TIMEOUT_MS);

test("Server accepts on IPv6 and Unix socket listeners and dials a Unix target", async () => {
  const directory = mkdtempSync(join(tmpdir(), "tinylb-server-"));
  cleanup.push(() => rmSync(directory, { recursive: true, force: true }));
  const backendPath = join(directory, "backend.sock");
  const unixBackend = Bun.listen({
    unix: backendPath,
    socket: {
      open(socket) {
        socket.write("unix-backend\n");
      },
      data(socket, chunk) {
        socket.write(chunk);
      },
    },
  });
  cleanup.push(() => unixBackend.stop(true));
  const listenPath = join(directory, "listen.sock");

  const server = new Server({ listen: [{ kind: "tcp", host: "::1", port: 0 }, { kind: "unix", path: listenPath }] });
  server.applySet(setOf(["u", `unix:${backendPath}`]));
  await server.start();
  cleanup.push(() => server.shutdown(0));
  const v6 = server.listeners[0]!;
  expect(v6.name).toMatch(/^\[::1\]:\d+$/);
  expect(server.listeners[1]!.name).toBe(`unix:${listenPath}`);

  let viaV6 = "";
  const v6Client = await Bun.connect({
    hostname: "::1",
    port: v6.address.kind === "tcp" ? v6.address.port : 0,
    socket: {
      data(_socket, chunk) {
        viaV6 += chunk.toString();
      },
    },
  });
  cleanup.push(() => v6Client.terminate());
  const unixClient = await TestClient.connect(listenPath);
  cleanup.push(() => unixClient.socket.terminate());

  await waitFor("greeting over IPv6", () => viaV6 === "unix-backend\n");
  await waitFor("greeting over the Unix listener", () => unixClient.firstLine === "unix-backend");
  await echoes(unixClient, "over unix");
}, TEST_TIMEOUT_MS);

test("Server drains open connections on shutdown, then closes the rest", async () => {
  const backends = startBackends(["a"]);
  const { server, port } = await startServer(setOfBackends(backends));
  const finishing = await connect(port);
  const lingering = await connect(port);
  await waitFor("greetings", () => finishing.firstLine === "a" && lingering.firstLine === "a");

  const shutdown = server.shutdown(2000);
  // New clients are refused once shutdown begins.
  expect(server.listeners.length).toBe(0);
  let refused = false;
  await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }).catch(() => (refused = true));
  expect(refused).toBe(true);

  // Open connections keep working during the grace period.
  await echoes(finishing, "during grace");
  finishing.close();
  const forced = await shutdown;

  expect(forced).toBe(1);
  await waitFor("the lingering client to be closed", () => lingering.closed, 1000);
  expect(server.activeCount).toBe(0);
}, TEST_TIMEOUT_MS);

test("Server turns on TCP keepalive on both sockets", async () => {
  const backends = startBackends(["a"]);
  const { port } = await startServer(setOfBackends(backends), { keepaliveMs: 7000 });
  const client = await connect(port);
  await waitFor("greeting", () => client.firstLine === "a");

  // ss lists a keepalive timer for sockets with SO_KEEPALIVE; neither test peer sets it.
  const sockets = (filter: string): string => Bun.spawnSync(["ss", "-tnoH", "state", "established", filter]).stdout.toString();
  const backendSide = (): string => sockets(`( dport = :${backends[0]!.port} )`);

  // The client socket inherits keepalive from the listener at once.
  expect(sockets(`( sport = :${port} )`)).toContain("timer:(keepalive");
  // The backend socket gets it within KEEPALIVE_DELAY_MS, in a batch (most connections end sooner).
  await waitFor("keepalive on the backend socket", () => backendSide().includes("timer:(keepalive"), KEEPALIVE_DELAY_MS + 2000);
  expect(sockets(`( dport = :${port} )`)).not.toContain("timer:(keepalive");
  client.close();
}, TEST_TIMEOUT_MS);

test("Server keepalive idle time follows updateTimeouts", async () => {
  const backends = startBackends(["a"]);
  const { server, port } = await startServer(setOfBackends(backends), { keepaliveMs: 37_000 });
  // ss prints the keepalive timer's seconds left, which start at the idle time and count down.
  const clientTimerSeconds = (client: TestClient): number | undefined => {
    const filter = `( sport = :${port} and dport = :${client.socket.localPort} )`;
    const line = Bun.spawnSync(["ss", "-tnoH", "state", "established", filter]).stdout.toString();
    const seconds = /timer:\(keepalive,(\d+)sec/.exec(line)?.[1];

    return seconds === undefined ? undefined : Number(seconds);
  };

  // Until the client acknowledges the greeting, ss shows the retransmission timer instead.
  const keepaliveSeconds = async (client: TestClient): Promise<number | undefined> => {
    await waitFor("a keepalive timer", () => clientTimerSeconds(client) !== undefined, 2000);

    return clientTimerSeconds(client);
  };

  const first = await connect(port);
  await waitFor("first greeting", () => first.firstLine === "a");
  const firstSeconds = await keepaliveSeconds(first);
  expect(firstSeconds).toBeGreaterThanOrEqual(30);
  expect(firstSeconds).toBeLessThanOrEqual(37);

  server.updateTimeouts({ connectTimeoutMs: 3000, keepaliveMs: 55_000 });
  const second = await connect(port);
  await waitFor("second greeting", () => second.firstLine === "a");
  const secondSeconds = await keepaliveSeconds(second);
  expect(secondSeconds).toBeGreaterThanOrEqual(48);
  expect(secondSeconds).toBeLessThanOrEqual(55);
  expect(clientTimerSeconds(first)).toBeLessThanOrEqual(37);

  server.updateTimeouts({ connectTimeoutMs: 3000, keepaliveMs: 0 });
  const third = await connect(port);
  await waitFor("third greeting", () => third.firstLine === "a");
  expect(clientTimerSeconds(third)).toBeUndefined();

  first.close();
  second.close();
  third.close();
}, TEST_TIMEOUT_MS);

/** Starts a server with a debug log over the echo backend "a" and connects one client that got its greeting. */
async function greetedClientWithLog(): Promise<{ client: TestClient; log: LogLines }> {
  const backends = startBackends(["a"]);
  const log = new LogLines();
  const { port } = await startServer(setOfBackends(backends), { logger: log.logger });
  const client = await connect(port);
  await waitFor("greeting", () => client.firstLine !== "");

  return { client, log };
}

test("close line names bytes and duration", async () => {
  const { client, log } = await greetedClientWithLog();

  client.socket.write("ping\n");
  await waitFor("echo", () => client.received.includes("ping\n"));
  client.close();
  await waitFor("close line", () => log.withMessage("connection closed").length > 0);

  const [line] = log.withMessage("connection closed");
  expect(line?.backend).toBe("a");
  expect(line?.bytesToBackend).toBe(5);
  // The echo backend sends its greeting "a\n", then the echo of "ping\n".
  expect(line?.bytesToClient).toBe(7);
  expect(typeof line?.durationMs).toBe("number");
});

test("close line of a dialing connection", async () => {
  const log = new LogLines();
  const { port } = await startServer(setOf(["dead", await deadTarget()]), { logger: log.logger });

  const client = await connect(port);
  await waitFor("close line", () => log.withMessage("connection closed while dialing").length > 0);
  client.close();

  const [line] = log.withMessage("connection closed while dialing");
  expect(line?.conn).toBeNumber();
  expect(String(line?.client)).toStartWith("127.0.0.1:");
  expect(line?.kind).toBe("closed");
  expect(line?.reason).toBeString();
});

test("client reset names the client", async () => {
  const { client, log } = await greetedClientWithLog();

  client.socket.terminate();
  await waitFor("close line", () => log.withMessage("connection closed").length > 0);

  const lines = log.withMessage("connection closed");
  expect(lines).toHaveLength(1);
  expect(lines[0]?.kind).toBe("reset");
  expect(String(lines[0]?.reason)).toStartWith("client ");
});
