import { expect, test } from "bun:test";
import { CounterRetention, type CounterRetentionSettings } from "../src/counter-retention.ts";
import { TrafficStats } from "../src/traffic-stats.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { LogLines } from "./support/log-lines.ts";
import { waitFor } from "./support/wait.ts";

/** Builds a retention over fresh counters; ids in `used` count as used, as ids of the set or with open connections do. */
function retention(settings: Partial<CounterRetentionSettings> = {}) {
  const clock = new FakeClock();
  const stats = new TrafficStats();
  const used = new Set<string>();
  const log = new LogLines();
  const retention = new CounterRetention(stats, () => (id) => used.has(id), { retentionMs: 1000, maxRetiredIds: 10, checkIntervalMs: 100, ...settings }, clock, log.logger);

  return { clock, stats, used, log, retention };
}

test("CounterRetention keeps counters for the retention time", () => {
  const { clock, stats, retention: subject } = retention();
  stats.backend("gone").total = 3;
  subject.check();
  expect(subject.retiredIds).toBe(1);

  clock.advance(999);
  subject.check();
  expect(stats.ids()).toEqual(["gone"]);
  expect(stats.backend("gone").total).toBe(3);

  clock.advance(1);
  subject.check();
  expect(stats.ids()).toEqual([]);
  expect(subject.retiredIds).toBe(0);
});

test("CounterRetention never retires used ids", () => {
  const { clock, stats, used, retention: subject } = retention();
  stats.backend("in-set").total = 1;
  used.add("in-set");

  subject.check();
  clock.advance(5000);
  subject.check();

  expect(subject.retiredIds).toBe(0);
  expect(stats.backend("in-set").total).toBe(1);
});

test("CounterRetention drops the longest retired over the maximum", () => {
  const { clock, stats, log, retention: subject } = retention({ maxRetiredIds: 2 });
  for (const id of ["first", "second", "third"]) {
    stats.backend(id).total = 1;
    subject.check();
    clock.advance(10);
  }

  expect(stats.ids()).toEqual(["second", "third"]);
  expect(subject.retiredIds).toBe(2);
  const warnings = log.withMessage("dropped the counters of a retired backend before the retention time: too many retired backends");
  expect(warnings).toHaveLength(1);
  expect(warnings[0]!.backend).toBe("first");
});

test("CounterRetention takes back an id used again", () => {
  const { clock, stats, used, retention: subject } = retention();
  stats.backend("back").total = 2;
  subject.check();
  expect(subject.retiredIds).toBe(1);

  clock.advance(500);
  used.add("back");
  subject.check();
  expect(subject.retiredIds).toBe(0);

  // Retired again later, it gets a full retention time from then.
  used.delete("back");
  clock.advance(500);
  subject.check();
  clock.advance(999);
  subject.check();
  expect(stats.backend("back").total).toBe(2);
  clock.advance(1);
  subject.check();
  expect(stats.ids()).toEqual([]);
});

test("CounterRetention checks on an interval", async () => {
  const { clock, stats, log, retention: subject } = retention({ retentionMs: 300, checkIntervalMs: 10 });
  stats.backend("gone").total = 1;
  subject.start();
  try {
    await waitFor("the id to be retired", () => subject.retiredIds === 1);
    clock.advance(300);
    await waitFor("the counters to be dropped", () => stats.ids().length === 0);
  } finally {
    subject.stop();
  }

  expect(subject.retiredIds).toBe(0);
  expect(log.withMessage("dropped the counters of a retired backend")[0]).toMatchObject({ backend: "gone", retiredMs: 300 });
});
