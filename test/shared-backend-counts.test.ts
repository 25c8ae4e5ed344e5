import { expect, test } from "bun:test";
import { ConnectionLimits } from "../src/connection-limits.ts";
import { Logger } from "../src/logger.ts";
import { SharedBackendCounts } from "../src/shared-backend-counts.ts";
import { ThreadCounters } from "../src/thread-counters.ts";

const TARGET_A = "127.0.0.1:1001";
const TARGET_B = "127.0.0.1:1002";
const TARGET_C = "127.0.0.1:1003";
const TARGET_D = "127.0.0.1:1004";

/** Counts over `slots` shared slots: one object as the main thread has it, one as a worker does. */
function mainAndWorker(slots: number): { main: SharedBackendCounts; worker: SharedBackendCounts } {
  const counts = new Int32Array(new SharedArrayBuffer(slots * Int32Array.BYTES_PER_ELEMENT));

  return { main: new SharedBackendCounts(counts, true), worker: new SharedBackendCounts(counts, false) };
}

test("main thread assigns slots, worker learns them", () => {
  const { main, worker } = mainAndWorker(4);

  const slots = main.assign(new Set([TARGET_A, TARGET_B]));
  expect(slots).toEqual({ [TARGET_A]: 0, [TARGET_B]: 1 });
  expect(worker.assign(new Set([TARGET_A, TARGET_B]))).toEqual({});
  worker.learn(slots);

  expect(worker.slotOf(TARGET_B)).toBe(1);
  expect(main.tryReserve(1, 2)).toBe(true);
  expect(worker.tryReserve(1, 2)).toBe(true);
  expect(worker.tryReserve(1, 2)).toBe(false);
  expect(main.count(1)).toBe(2);
});

test("release stops at zero", () => {
  const { main } = mainAndWorker(1);
  main.assign(new Set([TARGET_A]));

  expect(main.tryReserve(0, 1)).toBe(true);
  expect(main.release(0)).toBe(true);
  expect(main.release(0)).toBe(false);
  expect(main.count(0)).toBe(0);
});

test("full table reuses idle slots", () => {
  const { main } = mainAndWorker(2);
  main.assign(new Set([TARGET_A, TARGET_B]));
  expect(main.tryReserve(main.slotOf(TARGET_A)!, 5)).toBe(true);

  // TARGET_A still has a connection, so only TARGET_B's slot goes to TARGET_C; TARGET_D gets none.
  expect(main.assign(new Set([TARGET_C, TARGET_D]))).toEqual({ [TARGET_C]: 1 });
  expect(main.slotOf(TARGET_A)).toBe(0);
  expect(main.slotOf(TARGET_B)).toBeUndefined();
  expect(main.slotOf(TARGET_D)).toBeUndefined();
});

test("two threads share per-backend cap", () => {
  const mainCounters = new ThreadCounters(undefined, true);
  const workerCounters = new ThreadCounters(mainCounters.buffer);
  const logger = new Logger({ sink: () => {} });
  const options = { maxConnectionsPerBackend: 3, threads: 2, globalCountShared: true };
  const mainLimits = new ConnectionLimits({ ...options, sharedBackendCounts: mainCounters.backendCounts }, logger);
  const workerLimits = new ConnectionLimits({ ...options, sharedBackendCounts: workerCounters.backendCounts }, logger);
  workerCounters.backendCounts!.learn(mainCounters.backendCounts!.assign(new Set([TARGET_A])));

  // Split per thread, each would admit 2; shared, the two admit 3 together.
  const admitted = [mainLimits.tryReserve(TARGET_A), workerLimits.tryReserve(TARGET_A), mainLimits.tryReserve(TARGET_A), workerLimits.tryReserve(TARGET_A)];
  expect(admitted).toEqual([true, true, true, false]);
  expect(mainLimits.count(TARGET_A)).toBe(3);
  workerLimits.release(TARGET_A);
  expect(mainLimits.tryReserve(TARGET_A)).toBe(true);
});

test("slotless target uses thread share", () => {
  const counts = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
  const shared = new SharedBackendCounts(counts, true);
  shared.assign(new Set([TARGET_A, TARGET_B]));
  const limits = new ConnectionLimits({ maxConnectionsPerBackend: 3, threads: 2, sharedBackendCounts: shared }, new Logger({ sink: () => {} }));

  // TARGET_B found no slot in a table of one, so this thread admits its share, 2 of 3.
  expect([limits.tryReserve(TARGET_B), limits.tryReserve(TARGET_B), limits.tryReserve(TARGET_B)]).toEqual([true, true, false]);
  limits.release(TARGET_B);
  limits.release(TARGET_B);
  expect(() => limits.release(TARGET_B)).toThrow("invariant violated");
});
