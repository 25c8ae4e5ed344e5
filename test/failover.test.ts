import { afterEach, expect, test } from "bun:test";
import { BackendSet } from "../src/backend-set.ts";
import type { ServerOptions } from "../src/server.ts";
import { StalledListener } from "./support/stalled-listener.ts";
import { HttpBackend, HttpBackendProcess } from "./support/http-backend.ts";
import { httpGet } from "./support/http-get.ts";
import { waitFor, within } from "./support/wait.ts";
import { setOf, startLoggedServer } from "./support/test-server.ts";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

function httpBackends(...ids: string[]): HttpBackend[] {
  const backends = ids.map((id) => new HttpBackend(id));
  cleanup.push(() => backends.forEach((backend) => backend.stop()));

  return backends;
}

function startServer(set: BackendSet, options: Partial<ServerOptions> = {}): ReturnType<typeof startLoggedServer> {
  return startLoggedServer(set, options, cleanup);
}

async function requests(port: number, count: number): Promise<string[]> {
  const bodies: string[] = [];
  for (let i = 0; i < count; i++) {
    bodies.push(await httpGet(port));
  }

  return bodies;
}

const readyzProbe = { kind: "http", path: "/readyz", intervalMs: 50, timeoutMs: 500, rise: 1, fall: 2 } as const;

test("Server routes around a killed backend process and back", async () => {
  const a = new HttpBackendProcess("a");
  await a.start();
  cleanup.push(() => a.kill());
  const [b, c] = httpBackends("b", "c");
  const { server, port, logs } = await startServer(setOf([a, b!, c!]), { health: { probe: readyzProbe } });
  expect(await requests(port, 3)).toEqual(["a", "b", "c"]);

  await a.kill();
  // Clients never see the failed dials: b or c serves every request.
  const whileDown = await requests(port, 6);
  expect(whileDown.every((body) => body === "b" || body === "c")).toBe(true);
  await waitFor("a to be unhealthy", () => server.health.state("a")?.healthy === false);
  const unhealthy = logs.withMessage("backend is unhealthy").filter((record) => record.backend === "a");
  expect(unhealthy.length).toBe(1);
  expect(String(unhealthy[0]!.cause)).toMatch(/ECONNREFUSED|refused/i);

  await a.start();
  await waitFor("a to be healthy again", () => server.health.state("a")?.healthy === true);
  const afterRestart = await requests(port, 6);
  expect(afterRestart.filter((body) => body === "a").length).toBe(2);
  expect(logs.withMessage("backend is healthy").filter((record) => record.backend === "a").length).toBe(1);
});

test("Server skips a backend that fails /readyz", async () => {
  const [a, b] = httpBackends("a", "b");
  a!.readyStatus = 503;
  const { server, port, logs } = await startServer(setOf([a!, b!]), { health: { probe: readyzProbe } });
  await waitFor("a to be unhealthy", () => server.health.state("a")?.healthy === false);

  expect(await requests(port, 4)).toEqual(["b", "b", "b", "b"]);
  expect(a!.served).toBe(0);
  const unhealthy = logs.withMessage("backend is unhealthy");
  expect(unhealthy.map((record) => record.backend)).toEqual(["a"]);
  expect(unhealthy[0]!.cause).toBe("http GET /readyz failed 2 times in a row: GET /readyz returned status 503, expected 200");
});

test("Server skips a backend whose probe outlasts the timeout", async () => {
  const [a, b] = httpBackends("a", "b");
  a!.readyDelayMs = 3000;
  const { server, port } = await startServer(setOf([a!, b!]), { health: { probe: { ...readyzProbe, timeoutMs: 100 } } });
  await waitFor("a to be unhealthy", () => server.health.state("a")?.healthy === false);

  expect(server.health.state("a")!.cause).toContain("timed out after 100 ms");
  expect(await requests(port, 3)).toEqual(["b", "b", "b"]);
});

test("Server fails over from a connect that never completes", async () => {
  const blackhole = await StalledListener.start();
  cleanup.push(() => blackhole.stop());
  const [b] = httpBackends("b");
  const set = setOf([{ id: "a", target: blackhole.target }, b!]);
  const { server, port } = await startServer(set, { connectTimeoutMs: 300, health: { backoffMs: 60_000 } });

  expect(await httpGet(port)).toBe("b");
  expect(server.stats.backend("a").dialFailures).toBe(1);
  expect(server.health.state("a")).toMatchObject({ healthy: false, dialFailureStreak: 1 });
  expect(server.health.state("a")!.cause).toContain("connect timed out after 300 ms");

  // During the back-off the rotation no longer waits on a.
  expect(await requests(port, 4)).toEqual(["b", "b", "b", "b"]);
  expect(server.stats.backend("a").dialFailures).toBe(1);
});

test("Server tries every backend when all are unhealthy", async () => {
  const backends = httpBackends("a", "b", "c");
  for (const backend of backends) {
    backend.readyStatus = 500;
  }
  const { server, port, logs } = await startServer(setOf(backends), { health: { probe: readyzProbe } });
  await waitFor("degraded", () => server.health.degraded);

  expect(await requests(port, 6)).toEqual(["a", "b", "c", "a", "b", "c"]);
  const degraded = logs.withMessage("every enabled backend is unhealthy or pending; degraded: trying all of them in rotation order");
  expect(degraded.length).toBe(1);
  expect(degraded[0]!.level).toBe("warn");

  backends[1]!.readyStatus = 200;
  await waitFor("b to be healthy", () => server.health.state("b")?.healthy === true);
  expect(server.health.degraded).toBe(false);
  expect(await requests(port, 3)).toEqual(["b", "b", "b"]);
  expect(logs.withMessage("no longer degraded: an enabled backend is healthy").length).toBe(1);
});

test("Server stops after max attempts", async () => {
  const missing = (id: string): { id: string; target: string } => ({ id, target: `unix:/tmp/tinylb-test-missing-${process.pid}-${id}.sock` });
  const [d] = httpBackends("d");
  const set = setOf([missing("a"), missing("b"), missing("c"), d!]);
  const { server, port, logs } = await startServer(set, { maxAttempts: 2 });

  expect(await httpGet(port)).toBe("closed");
  expect(logs.withMessage("no backend could be dialled; closing client")[0]).toMatchObject({ tried: 2, maxAttempts: 2 });
  expect(server.stats.backend("a").dialFailures).toBe(1);
  expect(server.stats.backend("b").dialFailures).toBe(1);
  expect(server.stats.backend("c").dialFailures).toBe(0);
  expect(server.stats.unserved).toBe(1);

  // a and b are backing off now, so the next client starts at the healthy ones.
  expect(await httpGet(port)).toBe("d");
});

test("Server tries every backend once by default", async () => {
  const missing = (id: string): { id: string; target: string } => ({ id, target: `unix:/tmp/tinylb-test-missing-${process.pid}-${id}.sock` });
  const [d] = httpBackends("d");
  const { server, port } = await startServer(setOf([missing("a"), missing("b"), missing("c"), d!]));

  expect(await httpGet(port)).toBe("d");
  expect(["a", "b", "c"].map((id) => server.stats.backend(id).dialFailures)).toEqual([1, 1, 1]);
});

test("Server fails over while the set is being replaced", async () => {
  const blackhole = await StalledListener.start();
  cleanup.push(() => blackhole.stop());
  const [up] = httpBackends("up");
  const slow = (from: number, to: number): { id: string; target: string }[] =>
    Array.from({ length: to - from + 1 }, (_, index) => ({ id: `slow-${from + index}`, target: blackhole.target }));

  // Every client starts on backends whose connects never complete; "up" only arrives in a later set.
  const sets = [setOf(slow(1, 4)), setOf([...slow(2, 5), up!]), setOf([...slow(3, 6)]), setOf([...slow(1, 2), ...slow(5, 8), up!])];
  const { server, port, logs } = await startServer(sets[0]!, { connectTimeoutMs: 150, health: { backoffMs: 60_000 } });

  const clients = Array.from({ length: 8 }, () => httpGet(port));
  for (const set of sets.slice(1)) {
    await Bun.sleep(120);
    server.applySet(set);
  }
  const bodies = await within("every client to finish", Promise.all(clients), 30_000);

  expect(bodies.every((body) => body === "up" || body === "closed")).toBe(true);
  expect(bodies.filter((body) => body === "up").length).toBeGreaterThan(0);
  expect(server.set.equals(sets.at(-1)!)).toBe(true);

  // No client dialled the same backend (id and target) twice.
  // Dial failures past the first per backend in 10 s are debug lines rather than warnings.
  const dials = logs.records.filter((record) => (record.level === "warn" || record.level === "debug") && record.msg === "dial failed");
  const attempts = new Map<string, number>();
  for (const record of dials) {
    const key = `${record.conn} ${record.backend} ${record.target}`;
    attempts.set(key, (attempts.get(key) ?? 0) + 1);
  }
  expect([...attempts.values()].every((count) => count === 1)).toBe(true);
  expect(dials.length).toBeGreaterThan(0);
  await waitFor("pool to empty", () => server.activeCount === 0);
});

test("Server fails over through 3,000 missing Unix sockets", async () => {
  // A connect to a missing Unix socket fails inside Bun.connect, so each failover used to
  // start the next dial one stack frame deeper, and about 1,400 of them overflowed the stack.
  const [live] = httpBackends("live");
  const missing = Array.from({ length: 3000 }, (_, index) => ({ id: `gone-${String(index).padStart(4, "0")}`, target: `unix:/tmp/tinylb-missing-${process.pid}/${index}.sock` }));
  const { server, port, logs } = await startServer(setOf([...missing, live!]));

  for (let i = 0; i < 2; i++) {
    expect(await within("a client to be served", httpGet(port), 30_000)).toBe("live");
  }
  expect(logs.withMessage("invariant violated: connection failed outside a dial")).toEqual([]);
  await waitFor("no connection left open", () => server.activeCount === 0);
}, 60_000);
