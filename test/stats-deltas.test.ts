import { expect, test } from "bun:test";
import { createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import { backendIdsInUseOutsideSet } from "../src/backend-id-usage.ts";
import type { Connection } from "../src/connection.ts";
import { Server } from "../src/server.ts";
import { StatsDeltas } from "../src/stats-deltas.ts";

/** Returns a relay worker's server, never started: the tests change its counters and set directly. */
function workerServer(): Server {
  const server = new Server({ listen: [], counterRetention: false });
  server.applySet(new BackendSet([createBackend("a", "127.0.0.1:9"), createBackend("b", "127.0.0.1:9")]));

  return server;
}

function grow(server: Server, id: string, connections: number, bytes: number): void {
  const counters = server.stats.backend(id);
  counters.total += connections;
  counters.bytesToBackend += bytes;
  counters.bytesToClient += 2 * bytes;
}

test("StatsDeltas sends growth since the last delta", () => {
  const server = workerServer();
  const deltas = new StatsDeltas();
  grow(server, "a", 2, 10);
  server.stats.accepted = 2;

  expect(deltas.take(server)).toMatchObject({ accepted: 2, backends: { a: { total: 2, dialFailures: 0, bytesToBackend: 10, bytesToClient: 20 } } });
  grow(server, "a", 1, 5);
  expect(deltas.take(server).backends).toEqual({ a: { total: 1, dialFailures: 0, bytesToBackend: 5, bytesToClient: 10 } });
  expect(deltas.take(server).backends).toEqual({});
});

test("StatsDeltas drops an unused id with both maps", () => {
  const server = workerServer();
  const deltas = new StatsDeltas();
  grow(server, "a", 3, 30);
  grow(server, "b", 1, 1);
  deltas.take(server);

  server.applySet(new BackendSet([createBackend("b", "127.0.0.1:9")]));
  deltas.dropUnused(server);
  expect(server.stats.ids()).toEqual(["b"]);
  expect(deltas.backendIds).toBe(1);

  // a returns: its next delta counts from 0, neither negative nor repeating the 3 already sent.
  server.applySet(new BackendSet([createBackend("a", "127.0.0.1:9"), createBackend("b", "127.0.0.1:9")]));
  grow(server, "a", 2, 7);
  expect(deltas.take(server).backends).toEqual({ a: { total: 2, dialFailures: 0, bytesToBackend: 7, bytesToClient: 14 } });
});

test("StatsDeltas keeps an id until its growth was sent", () => {
  const server = workerServer();
  const deltas = new StatsDeltas();
  grow(server, "a", 1, 4);
  deltas.take(server);
  server.applySet(new BackendSet([createBackend("b", "127.0.0.1:9")]));

  // A connection closed after the last delta: its bytes are not sent yet.
  grow(server, "a", 0, 6);
  deltas.dropUnused(server);
  expect(server.stats.ids()).toContain("a");

  expect(deltas.take(server).backends).toEqual({ a: { total: 0, dialFailures: 0, bytesToBackend: 6, bytesToClient: 12 } });
  deltas.dropUnused(server);
  expect(server.stats.ids()).not.toContain("a");
  expect(deltas.backendIds).toBe(0);
});

test("StatsDeltas keeps an id with an open connection", () => {
  const server = workerServer();
  const deltas = new StatsDeltas();
  grow(server, "a", 1, 1);
  // A stand-in for an open connection: the pool and the id check read only these fields.
  const open = { id: 1, target: "127.0.0.1:9", backend: createBackend("a", "127.0.0.1:9"), close: () => {} } as unknown as Connection;
  server.pool.add(open);
  deltas.take(server);
  server.applySet(BackendSet.EMPTY);

  deltas.dropUnused(server);
  expect(server.stats.ids()).toEqual(["a"]);
  expect(backendIdsInUseOutsideSet(server)).toEqual(["a"]);

  server.pool.delete(open);
  deltas.dropUnused(server);
  expect(server.stats.ids()).toEqual([]);
  expect(backendIdsInUseOutsideSet(server)).toEqual([]);
});

test("StatsDeltas sends new duration observations", () => {
  const server = workerServer();
  const deltas = new StatsDeltas();
  server.stats.backend("a").connectDuration.observe(0.0002);
  server.stats.connectionDuration.observe(2);

  const first = deltas.take(server);
  expect(first.backends.a?.connectDuration).toMatchObject({ sum: 0.0002, count: 1 });
  expect(first.backends.a?.connectDuration?.buckets[1]).toBe(1);
  expect(first.connectionDuration).toMatchObject({ sum: 2, count: 1 });

  // Only the growth goes out: the next delta has none, then only the new observation.
  expect(deltas.take(server)).not.toHaveProperty("connectionDuration");
  server.stats.backend("a").connectDuration.observe(0.003);
  const third = deltas.take(server);
  expect(third.backends).toEqual({ a: { total: 0, dialFailures: 0, bytesToBackend: 0, bytesToClient: 0, connectDuration: expect.objectContaining({ count: 1 }) } });
  expect(third.backends.a?.connectDuration?.buckets.reduce((sum, count) => sum + count, 0)).toBe(1);
  expect(third.backends.a?.connectDuration?.sum).toBeCloseTo(0.003, 12);
});
