/**
 * Slow start on real sockets: where new clients go while a backend that returned ramps up,
 * under leastconn and round-robin, through a Server whose clock the test moves.
 */
import { afterEach, expect, test } from "bun:test";
import { createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import { BackendSetUnion } from "../src/backend-set-union.ts";
import { BackendStates } from "../src/backend-states.ts";
import { collectStatus } from "../src/balancer-status.ts";
import { renderMetrics } from "../src/metrics.ts";
import { Server } from "../src/server.ts";
import type { ServerOptions } from "../src/server-options.ts";
import { TestBackend, type TestClient } from "./support/backends.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { holdClients, tally, terminateClients } from "./support/held-clients.ts";
import { HttpBackend } from "./support/http-backend.ts";
import { LogLines } from "./support/log-lines.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

const MINUTE = { durationMs: 60_000, byId: new Map<string, number>() };

function setOf(backends: TestBackend[]): BackendSet {
  return new BackendSet(backends.map((backend) => createBackend(backend.id, backend.target)));
}

/** Starts greeting backends a, b and c and a server on them whose clock only the test moves. */
async function startServer(options: Partial<ServerOptions>): Promise<{ server: Server; port: number; clock: FakeClock; log: LogLines; backends: TestBackend[] }> {
  const backends = ["a", "b", "c"].map((id) => TestBackend.echo(id));
  cleanup.push(() => backends.forEach((backend) => backend.stop()));
  const clock = new FakeClock();
  const log = new LogLines();
  const server = new Server({ listen: [{ kind: "tcp", host: "127.0.0.1", port: 0 }], logger: log.logger, clock, ...options });
  server.applySet(setOf(backends));
  await server.start();
  cleanup.push(() => server.shutdown(0));
  const address = server.listeners[0]!.address;

  return { server, port: address.kind === "tcp" ? address.port : 0, clock, log, backends };
}

/** Takes c out of the set, waits until its clients are closed, and puts it back. */
async function removeAndReturnC(server: Server, backends: TestBackend[], clients: TestClient[]): Promise<void> {
  server.applySet(setOf(backends.slice(0, 2)));
  const toC = clients.filter((client) => client.firstLine === "c");
  await waitFor("c's clients to be closed", () => toC.every((client) => client.ended || client.closed));
  server.applySet(setOf(backends));
}

test("leastconn fills a returning backend gradually", async () => {
  const { server, port, clock, log, backends } = await startServer({ balance: "leastconn", slowStart: MINUTE });
  const clients: TestClient[] = [];
  cleanup.push(() => terminateClients(clients));
  // The backends of the start-up set begin no slow start.
  expect(await holdClients(port, 9, clients)).toEqual(["a", "b", "c", "a", "b", "c", "a", "b", "c"]);
  expect(server.slowStart.size).toBe(0);

  await removeAndReturnC(server, backends, clients);
  expect(log.withMessage("slow start began").map((record) => [record.backend, record.cause])).toEqual([["c", "joined the set"]]);

  // Weight 0.1: a and b score 3 / 1, c scores 0 / 0.1 and takes one client, then scores
  // 1 / 0.1 = 10. a and b take clients until they score 10 too; without slow start, c would
  // take the first three.
  expect(await holdClients(port, 15, clients)).toEqual(["c", "a", "b", "a", "b", "a", "b", "a", "b", "a", "b", "a", "b", "a", "b"]);

  // At 54 s the weight is 0.91: c takes clients while count / 0.91 is below the 10 of a and b.
  clock.advance(54_000);
  expect(tally(await holdClients(port, 10, clients))).toEqual({ c: 9, a: 1 });

  // The window is over: the counts (11, 10, 10) even out in rotation order.
  clock.advance(6000);
  expect(log.withMessage("slow start ended").map((record) => [record.backend, record.cause])).toEqual([["c", "its window is over"]]);
  expect(await holdClients(port, 5, clients)).toEqual(["b", "c", "a", "b", "c"]);
  expect(backends.map((backend) => server.limits.count(backend.target))).toEqual([12, 12, 12]);
});

test("leastconn has no slow start by default", async () => {
  const { server, port, backends } = await startServer({ balance: "leastconn" });
  const clients: TestClient[] = [];
  cleanup.push(() => terminateClients(clients));
  await holdClients(port, 9, clients);

  await removeAndReturnC(server, backends, clients);
  expect(server.slowStart.size).toBe(0);
  expect(await holdClients(port, 3, clients)).toEqual(["c", "c", "c"]);
});

test("round-robin ramps a backend that turns healthy again", async () => {
  const { server, port, clock, log } = await startServer({ slowStart: MINUTE });
  const c = server.set.get("c")!;
  const clients: TestClient[] = [];
  cleanup.push(() => terminateClients(clients));

  // A failed dial makes c unhealthy for a back-off of 1 s; once it ends, the next dial to c succeeds.
  server.health.dialFailed(c, "test: connection refused");
  expect(tally(await holdClients(port, 4, clients))).toEqual({ a: 2, b: 2 });
  clock.advance(1000);
  await holdClients(port, 3, clients);
  expect(server.health.isReportedHealthy(c)).toBe(true);
  const infoAndAbove = log.records.filter((record) => record.backend === "c" && record.level !== "debug").map((record) => record.msg);
  expect(infoAndAbove).toEqual(["backend is unhealthy", "backend is healthy", "slow start began"]);
  expect(log.withMessage("slow start began")[0]).toMatchObject({ level: "info", cause: "turned healthy again", duration: "1m" });

  // Weight 0.1: c takes one of ten of its turns, and a and b share the rest.
  expect(tally(await holdClients(port, 21, clients))).toEqual({ a: 10, b: 10, c: 1 });
  // Weight 0.55 at 30 s: about 0.55 / 2.55 of the clients.
  clock.advance(30_000);
  const atHalf = tally(await holdClients(port, 51, clients)).c ?? 0;
  expect(atHalf).toBeGreaterThanOrEqual(10);
  expect(atHalf).toBeLessThanOrEqual(12);

  // After the window, one each in turn.
  clock.advance(30_000);
  expect(tally(await holdClients(port, 6, clients))).toEqual({ a: 2, b: 2, c: 2 });
}, 30_000);

test("round-robin has no slow start by default", async () => {
  const { server, port, clock } = await startServer({});
  const c = server.set.get("c")!;
  const clients: TestClient[] = [];
  cleanup.push(() => terminateClients(clients));

  server.health.dialFailed(c, "test: connection refused");
  clock.advance(1000);
  await holdClients(port, 3, clients);
  expect(server.health.isReportedHealthy(c)).toBe(true);
  expect(tally(await holdClients(port, 6, clients))).toEqual({ a: 2, b: 2, c: 2 });
});

test("slow start shows in status and metrics", async () => {
  const { server, port, clock, backends } = await startServer({ balance: "leastconn", slowStart: MINUTE });
  const clients: TestClient[] = [];
  cleanup.push(() => terminateClients(clients));
  await holdClients(port, 3, clients);
  await removeAndReturnC(server, backends, clients);
  clock.advance(15_000);

  const union = new BackendSetUnion(() => {});
  const status = collectStatus(server, union);
  expect(status.slowStartMs).toBe(60_000);
  expect(status.backends.map((backend) => [backend.id, backend.slowStartMs, backend.slowStartEndsInMs, backend.slowStartWeight])).toEqual([
    ["a", 60_000, undefined, undefined],
    ["b", 60_000, undefined, undefined],
    ["c", 60_000, 45_000, 0.33],
  ]);
  const metrics = renderMetrics({ server, union });
  expect(metrics).toContain('\ntinylb_backend_slow_start_weight{backend="a"} 1\n');
  expect(metrics).toContain('\ntinylb_backend_slow_start_weight{backend="c"} 0.325\n');

  clock.advance(45_000);
  expect(collectStatus(server, union).backends[2]!.slowStartEndsInMs).toBeUndefined();
  expect(renderMetrics({ server, union })).toContain('\ntinylb_backend_slow_start_weight{backend="c"} 1\n');
});

test("enabling a backend again begins its slow start", async () => {
  const { server, log } = await startServer({ slowStart: MINUTE });
  const states = new BackendStates(server, log.logger);

  await states.change("c", "disabled");
  expect(server.slowStart.size).toBe(0);
  await states.change("c", "enabled");
  expect(server.slowStart.remainingMs(server.set.get("c")!)).toBe(60_000);
  expect(log.withMessage("slow start began")[0]).toMatchObject({ backend: "c", cause: "enabled again" });

  // Enabling an enabled backend changes nothing, so no new window begins.
  await states.change("a", "enabled");
  expect(log.withMessage("slow start began").length).toBe(1);
});

test("a provider's first set begins no slow start", async () => {
  const { server, backends, log } = await startServer({ slowStart: MINUTE });
  const union = new BackendSetUnion((set, cause, firstSet) => server.applySet(set, { provider: cause }, { discovery: firstSet }));
  const [a, b, c] = backends.map((backend) => createBackend(backend.id, backend.target)) as [ReturnType<typeof createBackend>, ReturnType<typeof createBackend>, ReturnType<typeof createBackend>];
  union.register("static")(new BackendSet([a]));
  const publishDns = union.register("dns:api.internal:6443");

  // Like the first DNS answer after start: b and c were serving already.
  publishDns(new BackendSet([b]));
  expect(server.set.size).toBe(2);
  expect(server.slowStart.size).toBe(0);

  // A later answer adds c, which begins a slow start.
  publishDns(new BackendSet([b, c]));
  expect(server.slowStart.remainingMs(c)).toBe(60_000);
  expect(log.withMessage("slow start began").map((record) => record.backend)).toEqual(["c"]);
});

test("a probe that passes again begins a slow start", async () => {
  const backends = ["a", "b"].map((id) => new HttpBackend(id));
  cleanup.push(() => backends.forEach((backend) => backend.stop()));
  const log = new LogLines();
  const probe = { kind: "http" as const, path: "/readyz", intervalMs: 100, timeoutMs: 50, rise: 1, fall: 1 };
  const server = new Server({ listen: [{ kind: "tcp", host: "127.0.0.1", port: 0 }], logger: log.logger, slowStart: MINUTE, health: { probe } });
  cleanup.push(() => server.shutdown(0));
  server.applySet(new BackendSet(backends.map((backend) => createBackend(backend.id, backend.target))));
  const b = server.set.get("b")!;

  backends[1]!.readyStatus = 503;
  await waitFor("b to turn unhealthy", () => !server.health.isHealthy(b));
  expect(server.slowStart.size).toBe(0);
  backends[1]!.readyStatus = 200;
  await waitFor("b to turn healthy", () => server.health.isReportedHealthy(b));

  expect(server.slowStart.remainingMs(b)).toBeGreaterThan(59_000);
  expect(log.withMessage("slow start began")[0]).toMatchObject({ backend: "b", cause: "turned healthy again" });
});
