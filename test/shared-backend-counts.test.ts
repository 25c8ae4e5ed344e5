import { expect, test } from "bun:test";
import { ConnectionLimits } from "../src/connection-limits.ts";
import { Logger } from "../src/logger.ts";
import { SharedBackendCounts } from "../src/shared-backend-counts.ts";
import { ThreadCounters } from "../src/thread-counters.ts";

/** Counts over `slots` shared slots: one object as the main thread has it, one as a worker does. */
function mainAndWorker(slots: number): { main: SharedBackendCounts; worker: SharedBackendCounts } {
  const counts = new Int32Array(new SharedArrayBuffer(slots * Int32Array.BYTES_PER_ELEMENT));

  return { main: new SharedBackendCounts(counts, true), worker: new SharedBackendCounts(counts, false) };
}

test("main thread assigns slots, worker learns them", () => {
  const { main, worker } = mainAndWorker(4);

  const slots = main.assign(["a", "b"]);
  expect(slots).toEqual({ a: 0, b: 1 });
  expect(worker.assign(["a", "b"])).toEqual({});
  worker.learn(slots);

  expect(worker.slotOf("b")).toBe(1);
  expect(main.tryReserve(1, 2)).toBe(true);
  expect(worker.tryReserve(1, 2)).toBe(true);
  expect(worker.tryReserve(1, 2)).toBe(false);
  expect(main.count(1)).toBe(2);
});

test("release stops at zero", () => {
  const { main } = mainAndWorker(1);
  main.assign(["a"]);

  expect(main.tryReserve(0, 1)).toBe(true);
  expect(main.release(0)).toBe(true);
  expect(main.release(0)).toBe(false);
  expect(main.count(0)).toBe(0);
});

test("full table reuses idle slots of removed ids", () => {
  const { main } = mainAndWorker(2);
  main.assign(["a", "b"]);
  expect(main.tryReserve(main.slotOf("a")!, 5)).toBe(true);

  // "a" still has a connection, so only "b"'s slot goes to "c"; "d" gets none.
  expect(main.assign(["c", "d"])).toEqual({ c: 1 });
  expect(main.slotOf("a")).toBe(0);
  expect(main.slotOf("b")).toBeUndefined();
  expect(main.slotOf("d")).toBeUndefined();
});

test("limits of two threads share one per-backend cap", () => {
  const mainCounters = new ThreadCounters(undefined, true);
  const workerCounters = new ThreadCounters(mainCounters.buffer);
  const logger = new Logger({ sink: () => {} });
  const options = { maxConnectionsPerBackend: 3, threads: 2, globalCountShared: true };
  const mainLimits = new ConnectionLimits({ ...options, sharedBackendCounts: mainCounters.backendCounts }, logger);
  const workerLimits = new ConnectionLimits({ ...options, sharedBackendCounts: workerCounters.backendCounts }, logger);
  workerCounters.backendCounts!.learn(mainCounters.backendCounts!.assign(["a"]));

  // Split per thread, each would admit 2; shared, the two admit 3 together.
  const admitted = [mainLimits.tryReserve("a"), workerLimits.tryReserve("a"), mainLimits.tryReserve("a"), workerLimits.tryReserve("a")];
  expect(admitted).toEqual([true, true, true, false]);
  expect(mainLimits.count("a")).toBe(3);
  workerLimits.release("a");
  expect(mainLimits.tryReserve("a")).toBe(true);
});

test("id without a slot falls back to the thread's share", () => {
  const counts = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
  const shared = new SharedBackendCounts(counts, true);
  shared.assign(["a", "b"]);
  const limits = new ConnectionLimits({ maxConnectionsPerBackend: 3, threads: 2, sharedBackendCounts: shared }, new Logger({ sink: () => {} }));

  // "b" found no slot in a table of one, so this thread admits its share, 2 of 3.
  expect([limits.tryReserve("b"), limits.tryReserve("b"), limits.tryReserve("b")]).toEqual([true, true, false]);
  limits.release("b");
  limits.release("b");
  expect(() => limits.release("b")).toThrow("invariant violated");
});
