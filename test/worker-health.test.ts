import { expect, test } from "bun:test";
import { createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import type { SnapshotEntry } from "../src/worker-messages.ts";
import { WorkerHealth } from "../src/worker-health.ts";

// Only snapshots and dial results are fed in here, so these targets are never dialled.
const set = new BackendSet([createBackend("a", "127.0.0.1:1001"), createBackend("b", "127.0.0.1:1002")]);
const [a, b] = set.backends as [ReturnType<typeof createBackend>, ReturnType<typeof createBackend>];

function snapshotEntry(condition: SnapshotEntry["condition"], backoffLeftMs: number): SnapshotEntry {
  return { id: "a", target: a.target, condition, cause: "dial failed", failing: true, backoffLeftMs };
}

test("WorkerHealth follows the back-off and runs its own trial", async () => {
  const reported: string[] = [];
  const health = new WorkerHealth((result) => reported.push(`${result.type} ${result.id}`));
  health.update(set);

  health.apply({ backends: [snapshotEntry("unhealthy", 100)], degraded: false, slowStart: [] });
  expect(health.isHealthy(a)).toBe(false);
  expect(health.isCoolingDown(a)).toBe(true);
  expect(health.isCoolingDown(b)).toBe(false);

  // The main thread reports the end of the back-off as retrying, with no time left.
  await Bun.sleep(120);
  expect(health.isCoolingDown(a)).toBe(false);
  health.apply({ backends: [snapshotEntry("retrying", 0)], degraded: false, slowStart: [] });
  expect(health.isHealthy(a)).toBe(true);

  expect(health.dialStarted(a, 3000)).toBe(true);
  expect(health.isHealthy(a)).toBe(false);
  expect(health.isCoolingDown(a)).toBe(true);
  expect(health.dialStarted(a, 3000)).toBe(false);
  // A snapshot with a new back-off, from a dial started before the trial, keeps the trial in flight.
  health.apply({ backends: [snapshotEntry("unhealthy", 50)], degraded: false, slowStart: [] });
  await Bun.sleep(60);
  expect(health.isHealthy(a)).toBe(false);
  expect(health.dialStarted(a, 3000)).toBe(false);

  // The failed trial keeps "a" out until the main thread's snapshot brings its back-off.
  health.dialFailed(a, "dial failed", true);
  expect(health.isCoolingDown(a)).toBe(true);
  expect(health.dialStarted(a, 3000)).toBe(false);
  health.apply({ backends: [snapshotEntry("retrying", 0)], degraded: false, slowStart: [] });

  expect(health.dialStarted(a, 3000)).toBe(true);
  health.dialGivenUp(a);
  expect(health.isHealthy(a)).toBe(true);
  health.dialStarted(a, 3000);
  health.dialSucceeded(a);
  expect(health.isHealthy(a)).toBe(true);
  expect(reported).toEqual(["dial-failed a", "dial-succeeded a"]);
});
