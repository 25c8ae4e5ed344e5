import { expect, test } from "bun:test";
import { ReconnectBackoff } from "../src/providers/reconnect-backoff.ts";
import { WriteSchedule } from "../src/write-schedule.ts";
import { waitFor } from "./support/wait.ts";

/** Returns a back-off without jitter: `initialMs`, then doubling. */
function fixedBackoff(initialMs: number): ReconnectBackoff {
  return new ReconnectBackoff({ initialMs, maxMs: 60_000, random: () => 1 });
}

/** Returns a write that records its name in `runs` and succeeds while `succeeds()` is true. */
function recordedWrite(runs: string[], name: string, succeeds: () => boolean): () => boolean {
  return () => {
    runs.push(name);

    return succeeds();
  };
}

test("WriteSchedule retries a failed write with a doubling delay", async () => {
  const delays: number[] = [];
  const runs: string[] = [];
  let healthy = false;
  const schedule = new WriteSchedule(1000, fixedBackoff(20), (delayMs) => delays.push(delayMs));

  schedule.runNow(recordedWrite(runs, "a", () => healthy));
  await waitFor("two retries", () => runs.length === 3);
  healthy = true;
  await waitFor("a retry that succeeds", () => runs.length === 4);

  expect(delays).toEqual([20, 40, 80]);
  expect(runs).toEqual(["a", "a", "a", "a"]);
  schedule.close();
});

test("WriteSchedule runSoon holds back a burst", () => {
  const runs: string[] = [];
  const schedule = new WriteSchedule(60_000, fixedBackoff(20));

  schedule.runSoon(recordedWrite(runs, "a", () => true));
  schedule.runSoon(recordedWrite(runs, "b", () => true));
  schedule.runSoon(recordedWrite(runs, "c", () => true));
  expect(runs).toEqual(["a"]);
  schedule.flush();

  expect(runs).toEqual(["a", "c"]);
  schedule.close();
});

test("WriteSchedule runSoon replaces a failed write", () => {
  const runs: string[] = [];
  const schedule = new WriteSchedule(60_000, fixedBackoff(60_000));

  schedule.runNow(recordedWrite(runs, "failed", () => false));
  schedule.runSoon(recordedWrite(runs, "newer", () => true));
  schedule.flush();

  expect(runs).toEqual(["failed", "newer"]);
  schedule.close();
});

test("WriteSchedule close runs a failed write once more", async () => {
  const runs: string[] = [];
  const schedule = new WriteSchedule(1000, fixedBackoff(20));

  schedule.runNow(recordedWrite(runs, "a", () => false));
  schedule.close();
  // Well past the 20 ms retry that close cancelled.
  await Bun.sleep(200);

  expect(runs).toEqual(["a", "a"]);
});

test("WriteSchedule runSoon after close runs at once", async () => {
  const runs: string[] = [];
  const schedule = new WriteSchedule(60_000, fixedBackoff(20));
  schedule.runNow(recordedWrite(runs, "before close", () => true));
  schedule.close();

  schedule.runSoon(recordedWrite(runs, "after close", () => true));
  expect(runs).toEqual(["before close", "after close"]);

  // A failed write after close is not retried either.
  schedule.runSoon(recordedWrite(runs, "failed after close", () => false));
  await Bun.sleep(100);
  expect(runs).toEqual(["before close", "after close", "failed after close"]);
});
