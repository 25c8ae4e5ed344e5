/**
 * The idle timeout through a Server on real sockets: idle connections are reset on both sides,
 * traffic in either direction keeps a connection open, and a reload turns it on or changes it.
 */
import { afterEach, expect, test } from "bun:test";
import { renderMetrics } from "../src/metrics.ts";
import { BackendSetUnion } from "../src/backend-set-union.ts";
import { collectStatus } from "../src/balancer-status.ts";
import type { Server, ServerOptions } from "../src/server.ts";
import { FakeClock } from "./support/fake-clock.ts";
import type { LogLines } from "./support/log-lines.ts";
import { Peer, PeerListener } from "./support/peers.ts";
import { setOf, startLoggedServer } from "./support/test-server.ts";
import { waitFor } from "./support/wait.ts";

/** Backstop for one test; the waits inside carry the real deadlines. */
const TEST_TIMEOUT_MS = 60_000;
/** The idle timeout of most tests: short, so that the suite stays fast. */
const TIMEOUT_MS = 1000;
/** How long a busy connection must stay open: three times the timeout. */
const BUSY_MS = 3 * TIMEOUT_MS;

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
}, TEST_TIMEOUT_MS);

interface Relay {
  server: Server;
  logs: LogLines;
  client: Peer;
  upstream: Peer;
  /** `performance.now()` when each side saw its socket close, or 0 while open. */
  closedAt: { client: number; upstream: number };
}

/** Starts a server with `options` in front of one backend and connects one client through it. */
async function relay(options: Partial<ServerOptions>): Promise<Relay> {
  const backend = new PeerListener();
  cleanup.push(() => backend.stop());
  const { server, port, logs } = await startLoggedServer(setOf([{ id: "only", target: backend.target }]), options, cleanup);
  const client = await Peer.connect(port);
  cleanup.push(() => client.socket.terminate());
  const upstream = await backend.next();
  await waitFor("connection to register", () => server.pool.size === 1);

  const closedAt = { client: 0, upstream: 0 };
  const watch = setInterval(() => {
    closedAt.client ||= client.closed ? performance.now() : 0;
    closedAt.upstream ||= upstream.closed ? performance.now() : 0;
  }, 5);
  cleanup.push(() => clearInterval(watch));

  return { server, logs, client, upstream, closedAt };
}

/** Waits until both peers saw their socket close, so that `closedAt` has both times. */
async function bothClosed(relay: Relay): Promise<void> {
  await waitFor("both sides to be closed", () => relay.closedAt.client > 0 && relay.closedAt.upstream > 0, 10_000);
}

/** Sends a request from the client and waits for it at the backend, after which the connection is idle. */
async function sendRequest(client: Peer, upstream: Peer): Promise<void> {
  client.socket.write("request");
  await waitFor("the request at the backend", () => upstream.text === "request");
}

/** Sends one byte every 200 ms from `from` for `durationMs`, and resolves with how many it sent. */
async function trickle(from: Peer, durationMs: number): Promise<number> {
  let sent = 0;
  const end = performance.now() + durationMs;
  while (performance.now() < end && !from.closed) {
    from.socket.write(".");
    sent++;
    await Bun.sleep(200);
  }

  return sent;
}

test("idle connection is reset on both sides", async () => {
  const scenario = await relay({ idleTimeoutMs: TIMEOUT_MS });
  const { server, logs, client, upstream, closedAt } = scenario;
  await sendRequest(client, upstream);
  const lastByteAt = performance.now();

  await bothClosed(scenario);

  expect(client.closeError?.code).toBe("ECONNRESET");
  expect(upstream.closeError?.code).toBe("ECONNRESET");
  expect(client.ended).toBe(false);
  expect(upstream.ended).toBe(false);
  // The client wrote its last byte before tinylb relayed it, so the idle time is at least this long.
  expect(closedAt.client - lastByteAt).toBeGreaterThanOrEqual(TIMEOUT_MS);
  expect(server.stats.idleClosed).toBe(1);
  const closed = logs.withMessage("connection closed");
  expect(closed).toHaveLength(1);
  expect(closed[0]).toMatchObject({ level: "debug", reason: "idle timeout", kind: "closed", backend: "only", target: expect.stringMatching(/^127\.0\.0\.1:\d+$/), conn: expect.any(Number) });
}, TEST_TIMEOUT_MS);

test.each(["upload", "download"] as const)("%s trickle keeps a connection open", async (direction) => {
  const { server, client, upstream } = await relay({ idleTimeoutMs: TIMEOUT_MS });
  const [from, to] = direction === "upload" ? [client, upstream] : [upstream, client];

  const sent = await trickle(from, BUSY_MS);

  await waitFor("every byte to arrive", () => to.received === sent);
  expect(client.closed).toBe(false);
  expect(upstream.closed).toBe(false);
  expect(server.stats.idleClosed).toBe(0);
}, TEST_TIMEOUT_MS);

test.each(["client", "backend"] as const)("connection half-closed by %s stays open", async (finished) => {
  const { server, client, upstream } = await relay({ idleTimeoutMs: TIMEOUT_MS });
  // The side that finished sends FIN; the other keeps sending to it.
  const [done, sender] = finished === "client" ? [client, upstream] : [upstream, client];
  done.shutdown();
  await waitFor("the FIN to arrive", () => sender.ended);

  const sent = await trickle(sender, BUSY_MS);

  await waitFor("every byte to arrive", () => done.received === sent);
  expect(client.closed).toBe(false);
  expect(upstream.closed).toBe(false);
  expect(server.stats.idleClosed).toBe(0);
  // Then the open direction goes idle too, and the timeout closes the connection.
  await waitFor("the half-closed connection to be closed", () => client.closed && upstream.closed, 10_000);
  expect(server.stats.idleClosed).toBe(1);
}, TEST_TIMEOUT_MS);

test("idle timeout is off by default", async () => {
  const { server, client, upstream } = await relay({});
  await sendRequest(client, upstream);

  // Idle for several sweep periods of the shortest timeout (1 s, swept every 250 ms).
  await Bun.sleep(2500);

  expect(server.idleTimeoutMs).toBe(0);
  expect(client.closed).toBe(false);
  expect(upstream.closed).toBe(false);
  upstream.socket.write("reply");
  await waitFor("the reply at the client", () => client.text === "reply");
}, TEST_TIMEOUT_MS);

test("idle timeout off sets no timer", async () => {
  const clock = new FakeClock();
  const { server } = await relay({ clock });

  expect(clock.pending).toBe(0);
  server.setIdleTimeout(TIMEOUT_MS);
  expect(clock.pending).toBe(1);
  server.setIdleTimeout(0);
  expect(clock.pending).toBe(0);
}, TEST_TIMEOUT_MS);

test("idle timeout turned on closes an open connection", async () => {
  const scenario = await relay({});
  const { server, client, upstream, closedAt } = scenario;
  await sendRequest(client, upstream);
  await Bun.sleep(1500); // Idle longer than the timeout about to be set.

  const turnedOnAt = performance.now();
  server.setIdleTimeout(TIMEOUT_MS);
  await bothClosed(scenario);

  // The idle time before the timeout was turned on does not count.
  expect(closedAt.client - turnedOnAt).toBeGreaterThanOrEqual(TIMEOUT_MS);
  expect(server.stats.idleClosed).toBe(1);
}, TEST_TIMEOUT_MS);

test("idle timeout lowered counts the idle time spent", async () => {
  const clock = new FakeClock();
  const { server, client, upstream } = await relay({ clock, idleTimeoutMs: 60_000 });
  await sendRequest(client, upstream);
  clock.advance(15_000); // The first sweep records the connection.

  clock.advance(45_000); // 45 s idle since that sweep.
  server.setIdleTimeout(10_000);
  clock.advance(2500); // The next sweep, a quarter of the new timeout later.

  await waitFor("both sides to be closed", () => client.closed && upstream.closed, 10_000);
  expect(client.closeError?.code).toBe("ECONNRESET");
  expect(server.stats.idleClosed).toBe(1);
}, TEST_TIMEOUT_MS);

test("idle timeout raised keeps a connection open", async () => {
  const clock = new FakeClock();
  const { server, client, upstream } = await relay({ clock, idleTimeoutMs: 4000 });
  await sendRequest(client, upstream);
  clock.advance(3000);

  server.setIdleTimeout(60_000);
  clock.advance(30_000);
  await Bun.sleep(100); // A reset would reach the peers within this on loopback.

  expect(client.closed).toBe(false);
  expect(upstream.closed).toBe(false);
  expect(server.stats.idleClosed).toBe(0);
}, TEST_TIMEOUT_MS);

test("idle closes show in status and metrics", async () => {
  const { server, client, upstream } = await relay({ idleTimeoutMs: TIMEOUT_MS });
  await waitFor("both sides to be closed", () => client.closed && upstream.closed, 10_000);

  const status = collectStatus(server, new BackendSetUnion(() => {}));
  expect(status.idleTimeoutMs).toBe(TIMEOUT_MS);
  expect(status.idleClosed).toBe(1);
  const metrics = renderMetrics({ server, union: new BackendSetUnion(() => {}) });
  expect(metrics).toContain("# TYPE tinylb_connections_idle_closed_total counter\ntinylb_connections_idle_closed_total 1\n");
}, TEST_TIMEOUT_MS);
