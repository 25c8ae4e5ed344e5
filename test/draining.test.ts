import { afterEach, expect, test } from "bun:test";
import { BackendSet } from "../src/backend-set.ts";
import { BackendSetUnion } from "../src/backend-set-union.ts";
import { collectStatus } from "../src/balancer-status.ts";
import { formatStatus } from "../src/status-command.ts";
import { Server, type ServerOptions } from "../src/server.ts";
import { TestBackend, TestClient } from "./support/backends.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { FullBacklogListener } from "./support/full-backlog.ts";
import { HttpBackend } from "./support/http-backend.ts";
import { waitFor } from "./support/wait.ts";
import { setOf, startLoggedServer } from "./support/test-server.ts";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

function startServer(set: BackendSet, options: Partial<ServerOptions>): ReturnType<typeof startLoggedServer> {
  return startLoggedServer(set, options, cleanup);
}

function echoBackends(...ids: string[]): TestBackend[] {
  const backends = ids.map((id) => TestBackend.echo(id));
  cleanup.push(() => backends.forEach((backend) => backend.stop()));

  return backends;
}

async function connected(port: number, expectedId: string): Promise<TestClient> {
  const client = await TestClient.connect(port);
  cleanup.push(() => client.close());
  await waitFor(`greeting from ${expectedId}`, () => client.firstLine !== "");
  expect(client.firstLine).toBe(expectedId);

  return client;
}

async function echoes(client: TestClient, text: string): Promise<void> {
  client.socket.write(`${text}\n`);
  await waitFor(`echo of ${text}`, () => client.received.includes(text));
}

test("Server drains a removed target until the deadline", async () => {
  const clock = new FakeClock();
  const [a, b] = echoBackends("a", "b");
  const { server, port, logs } = await startServer(setOf([a!, b!]), { onRemoval: "drain", drainTimeoutMs: 5000, clock });
  const toA = await connected(port, "a");

  server.applySet(setOf([b!]));

  await echoes(toA, "still draining");
  const toB = await connected(port, "b");
  expect(logs.withMessage("draining connections of removed target")[0]).toMatchObject({ backend: "a", target: a!.target, open: 1, timeout: "5s" });

  expect(server.drainRemainingMs(a!.target)).toBe(5000);
  clock.advance(2000);
  expect(server.drainRemainingMs(a!.target)).toBe(3000);
  const removed = collectStatus(server, new BackendSetUnion(() => {})).removed;
  expect(removed).toEqual([expect.objectContaining({ id: "a", targetInUse: false, drainEndsInMs: 3000 })]);
  expect(formatStatus({ listeners: [], backends: [], removed, conflicts: [], providers: [], degraded: false, shuttingDown: false })).toContain(
    'Removed: "a" left the set; its 1 open connection is draining; it is closed in 3s if still open\n',
  );

  clock.advance(2999);
  await echoes(toA, "one ms left");
  clock.advance(1);
  await waitFor("client of a to see the end", () => toA.ended || toA.closed);
  expect(logs.withMessage("drain of removed target ended; closed the connections still open")[0]).toMatchObject({ target: a!.target, closed: 1 });
  expect(server.drainRemainingMs(a!.target)).toBeUndefined();

  await echoes(toB, "b untouched");
  expect(toB.closed).toBe(false);
});

test("Server keeps a draining target that comes back", async () => {
  const clock = new FakeClock();
  const [a, b] = echoBackends("a", "b");
  const { server, port, logs } = await startServer(setOf([a!, b!]), { onRemoval: "drain", drainTimeoutMs: 5000, clock });
  const toA = await connected(port, "a");

  server.applySet(setOf([b!]));
  server.applySet(setOf([a!, b!]));
  clock.advance(10_000);

  await echoes(toA, "back in the set");
  expect(toA.closed).toBe(false);
  expect(logs.withMessage("removed target is back in the backend set; its connections stay open").length).toBe(1);
  expect(clock.pending).toBe(0);
});

test("Server drain ends early at shutdown", async () => {
  const clock = new FakeClock();
  const [a, b] = echoBackends("a", "b");
  const { server, port } = await startServer(setOf([a!, b!]), { onRemoval: "drain", drainTimeoutMs: 5000, clock });
  const toA = await connected(port, "a");
  server.applySet(setOf([b!]));

  expect(await server.shutdown(0)).toBe(1);

  await waitFor("client of a to see the end", () => toA.ended || toA.closed);
  expect(clock.pending).toBe(0);
});

const failFastProbe = { kind: "http", path: "/readyz", intervalMs: 30, timeoutMs: 1000, rise: 1, fall: 1 } as const;

function httpBackends(...ids: string[]): HttpBackend[] {
  const backends = ids.map((id) => new HttpBackend(id));
  cleanup.push(() => backends.forEach((backend) => backend.stop()));

  return backends;
}

async function idleClientOf(server: Server, port: number, id: string): Promise<TestClient> {
  const client = await TestClient.connect(port);
  cleanup.push(() => client.close());
  await waitFor(`a connection to ${id}`, () => [...server.pool.connections()].some((connection) => connection.backend.id === id));

  return client;
}

test("Server closes connections of an unhealthy backend on request", async () => {
  const [a, b] = httpBackends("a", "b");
  const { server, port, logs } = await startServer(setOf([a!, b!]), { onUnhealthy: "close", health: { probe: failFastProbe } });
  const toA = await idleClientOf(server, port, "a");
  const toB = await idleClientOf(server, port, "b");

  a!.readyStatus = 503;

  await waitFor("client of a to see the end", () => toA.ended || toA.closed);
  expect(logs.withMessage("closed connections of unhealthy backend")[0]).toMatchObject({ backend: "a", closed: 1 });
  expect(toB.closed).toBe(false);
  expect([...server.pool.connections()].map((connection) => connection.backend.id)).toEqual(["b"]);
});

test("Server keeps connections of an unhealthy backend by default", async () => {
  const [a, b] = httpBackends("a", "b");
  const { server, port } = await startServer(setOf([a!, b!]), { health: { probe: failFastProbe } });
  const toA = await idleClientOf(server, port, "a");

  a!.readyStatus = 503;
  await waitFor("a to be unhealthy", () => server.health.state("a")?.healthy === false);

  toA.socket.write("GET /still-served HTTP/1.1\r\nHost: a\r\n\r\n");
  await waitFor("response from a", () => toA.received.includes("\r\n\r\na"));
  expect(toA.closed).toBe(false);
});

test("Server keeps connections while every backend is unhealthy", async () => {
  const [a] = httpBackends("a");
  const { server, port, logs } = await startServer(setOf([a!]), { onUnhealthy: "close", health: { probe: failFastProbe } });
  const toA = await idleClientOf(server, port, "a");

  a!.readyStatus = 503;
  await waitFor("degraded", () => server.health.degraded);

  expect(logs.withMessage("kept connections of unhealthy backend because every enabled backend is unhealthy").length).toBe(1);
  toA.socket.write("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  await waitFor("response from a", () => toA.received.includes("\r\n\r\na"));
  expect(toA.closed).toBe(false);
});

test("Server fails over dials of an unhealthy backend", async () => {
  // a's connects hang in a full accept queue until the listener accepts, and so do its tcp
  // probes. The first probe starts at once and fails after its timeout, which leaves the
  // client time to start its dial to a.
  const silent = await FullBacklogListener.start();
  cleanup.push(() => silent.stop());
  const [b] = echoBackends("b");
  const probe = { kind: "tcp", intervalMs: 1000, timeoutMs: 800, rise: 100, fall: 1 } as const;
  const set = setOf([{ id: "a", target: silent.target }, b!]);
  const { server, port, logs } = await startServer(set, { onUnhealthy: "close", connectTimeoutMs: 10_000, health: { probe } });
  const client = await TestClient.connect(port);
  cleanup.push(() => client.close());
  await waitFor("the dial to a", () => server.dialingBackendIds().includes("a"));

  await waitFor("a to turn unhealthy", () => server.health.state("a")?.healthy === false);
  // Accepting now lets a connect that was still in flight complete.
  for (let i = 0; i < 10; i++) {
    silent.accept();
  }
  await waitFor("the client to be served", () => server.pool.size === 1);

  expect([...server.pool.connections()].map((connection) => connection.backend.id)).toEqual(["b"]);
  await waitFor("greeting from b", () => client.firstLine !== "");
  expect(client.firstLine).toBe("b");
  expect(logs.withMessage("dial given up")[0]).toMatchObject({ backend: "a", err: "the backend turned unhealthy while the dial was in flight", next: "b" });
});
