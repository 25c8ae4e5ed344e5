import { afterEach, expect, test } from "bun:test";
import { createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import { SLOW_START_FLOOR, SlowStart } from "../src/slow-start.ts";
import { SLOW_START_OFF, type SlowStartSettings } from "../src/slow-start-setting.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { LogLines } from "./support/log-lines.ts";

// Weights only: these targets are never dialled. An entry "id@port" gives the id that port.
function setOf(...entries: string[]): BackendSet {
  return new BackendSet(
    entries.map((entry) => {
      const [id, port] = entry.split("@");

      return createBackend(id!, `127.0.0.1:${port ?? 1000 + id!.charCodeAt(0)}`);
    }),
  );
}

const MINUTE: SlowStartSettings = { durationMs: 60_000, byId: new Map() };

const running: SlowStart[] = [];
afterEach(() => running.splice(0).forEach((slowStart) => slowStart.stop()));

function start(settings: SlowStartSettings = MINUTE, leads = true): { slowStart: SlowStart; clock: FakeClock; logs: LogLines } {
  const clock = new FakeClock();
  const logs = new LogLines();
  const slowStart = new SlowStart(clock, logs.logger, leads);
  slowStart.configure(settings);
  running.push(slowStart);

  return { slowStart, clock, logs };
}

/** Weights of every backend of `set` at the clock's time, by id. */
function weights(slowStart: SlowStart, set: BackendSet): Record<string, number> {
  return Object.fromEntries(set.backends.map((backend) => [backend.id, slowStart.weightOf(backend, slowStart.now())]));
}

test.each([
  [0, SLOW_START_FLOOR],
  [15_000, 0.325],
  [30_000, 0.55],
  [59_999, 0.999985],
  [60_000, 1],
  [90_000, 1],
])("SlowStart weight %p ms into a 1m window is %p", (elapsedMs, expected) => {
  const set = setOf("a");
  const { slowStart, clock } = start();
  slowStart.begin(set.backends, "test");

  clock.advance(elapsedMs);
  expect(slowStart.weightOf(set.get("a")!, clock.now())).toBeCloseTo(expected, 9);
});

test("SlowStart weighs other backends and targets 1", () => {
  const set = setOf("a", "b");
  const { slowStart, clock } = start();
  slowStart.begin([set.get("a")!], "test");

  expect(weights(slowStart, set)).toEqual({ a: SLOW_START_FLOOR, b: 1 });
  // The window belongs to the id with its target, not to the id alone.
  expect(slowStart.weightOf(createBackend("a", "127.0.0.1:9"), clock.now())).toBe(1);
  expect(slowStart.size).toBe(1);
});

test("SlowStart is off by default", () => {
  const set = setOf("a");
  const { slowStart, logs } = start(SLOW_START_OFF);

  slowStart.begin(set.backends, "test");
  slowStart.healthFlipped(set.get("a")!, true);
  expect(slowStart.size).toBe(0);
  expect(weights(slowStart, set)).toEqual({ a: 1 });
  expect(logs.records).toEqual([]);
});

test("SlowStart window of one backend overrides the default", () => {
  const set = setOf("a", "b", "c");
  const { slowStart, clock } = start({ durationMs: 60_000, byId: new Map([["b", 0], ["c", 10_000]]) });
  slowStart.begin(set.backends, "test");

  // b has its slow start turned off, and c's window is 10 s.
  expect(weights(slowStart, set)).toEqual({ a: SLOW_START_FLOOR, c: SLOW_START_FLOOR, b: 1 });
  clock.advance(10_000);
  expect(weights(slowStart, set)).toEqual({ a: 0.25, b: 1, c: 1 });
});

test("SlowStart logs each window's begin and end", () => {
  const set = setOf("a", "b");
  const { slowStart, clock, logs } = start();

  slowStart.begin([set.get("a")!], "turned healthy again");
  clock.advance(30_000);
  slowStart.begin([set.get("b")!], "enabled again");
  expect(slowStart.remainingMs(set.get("a")!)).toBe(30_000);
  expect(slowStart.remainingMs(set.get("b")!)).toBe(60_000);

  clock.advance(29_999);
  expect(logs.withMessage("slow start ended")).toEqual([]);
  clock.advance(1);
  expect(slowStart.remainingMs(set.get("a")!)).toBeUndefined();
  expect(slowStart.size).toBe(1);
  clock.advance(30_000);
  expect(slowStart.size).toBe(0);
  expect(clock.pending).toBe(0);

  expect(logs.withMessage("slow start began").map((record) => [record.level, record.backend, record.target, record.cause, record.duration])).toEqual([
    ["info", "a", set.get("a")!.target, "turned healthy again", "1m"],
    ["info", "b", set.get("b")!.target, "enabled again", "1m"],
  ]);
  expect(logs.withMessage("slow start ended").map((record) => [record.level, record.backend, record.cause])).toEqual([
    ["info", "a", "its window is over"],
    ["info", "b", "its window is over"],
  ]);
});

test("SlowStart logs windows that begin together in one line", () => {
  const set = setOf("a", "b", "c");
  const { slowStart, clock, logs } = start();

  slowStart.begin(set.backends, "joined the set");
  clock.advance(60_000);
  expect(logs.withMessage("slow start began").map((record) => [record.backends, record.count])).toEqual([["a,b,c", 3]]);
  expect(logs.withMessage("slow start ended").map((record) => [record.backends, record.count])).toEqual([["a,b,c", 3]]);
});

test("SlowStart begins when a backend turns healthy, ends when it turns unhealthy", () => {
  const set = setOf("a");
  const a = set.get("a")!;
  const { slowStart, logs } = start();

  slowStart.healthFlipped(a, true);
  expect(slowStart.remainingMs(a)).toBe(60_000);
  expect(logs.withMessage("slow start began")[0]!.cause).toBe("turned healthy again");

  slowStart.healthFlipped(a, false);
  expect(slowStart.size).toBe(0);
  expect(logs.withMessage("slow start ended").map((record) => [record.level, record.cause])).toEqual([["debug", "turned unhealthy"]]);
});

test.each([
  ["joins while others stay", ["a", "b"], ["a", "b", "c"], false, ["c"], "joined the set"],
  ["changes target while others stay", ["a", "b"], ["a", "b@2000"], false, ["b"], "changed target"],
  ["the start-up set", [], ["a", "b"], false, [], undefined],
  ["a whole new set", ["a", "b"], ["c", "d"], false, [], undefined],
  ["every id changes target", ["a"], ["a@2000"], false, [], undefined],
  ["a provider's first set", ["a"], ["a", "b"], true, [], undefined],
] as const)("SlowStart set change: %s", (_name, before, after, discovery, expected, cause) => {
  const { slowStart, logs } = start();
  const previous = setOf(...before);
  const set = setOf(...after);
  slowStart.setReplaced(BackendSet.EMPTY, previous);

  slowStart.setReplaced(previous, set, discovery);
  const inSlowStart = set.backends.filter((backend) => slowStart.remainingMs(backend) !== undefined).map((backend) => backend.id);
  expect(inSlowStart).toEqual([...expected]);
  expect(logs.withMessage("slow start began").map((record) => record.cause)).toEqual(cause === undefined ? [] : [cause]);
});

test.each([
  ["joins while others stay", ["a", "b"], ["a", "b", "c"], false, "joined the set; first probe passed"],
  ["changes target while others stay", ["a", "c"], ["a", "c@2000"], false, "changed target; first probe passed"],
  ["a whole new set", ["a", "b"], ["c", "d"], false, undefined],
  ["a provider's first set", ["a"], ["a", "c"], true, undefined],
] as const)("SlowStart pending backend that %s", (_name, before, after, discovery, cause) => {
  const { slowStart, clock, logs } = start();
  const previous = setOf(...before);
  const set = setOf(...after);
  const c = set.get("c")!;
  slowStart.setReplaced(BackendSet.EMPTY, previous);

  // c waits for its first probe, so no window begins when it joins.
  slowStart.setReplaced(previous, set, discovery, (backend) => backend.id === "c");
  expect(slowStart.remainingMs(c)).toBeUndefined();
  expect(logs.withMessage("slow start began")).toEqual([]);

  // Its first pass begins the window that joining would have begun, counted from the pass.
  clock.advance(5_000);
  slowStart.healthFlipped(c, true);
  expect(slowStart.remainingMs(c)).toBe(cause === undefined ? undefined : 60_000);
  expect(logs.withMessage("slow start began").map((record) => record.cause)).toEqual(cause === undefined ? [] : [cause]);
});

test("SlowStart pending backend whose first probe fails", () => {
  const { slowStart, logs } = start();
  const previous = setOf("a");
  const set = setOf("a", "c");
  const c = set.get("c")!;
  slowStart.setReplaced(BackendSet.EMPTY, previous);
  slowStart.setReplaced(previous, set, false, (backend) => backend.id === "c");

  // A failed first probe begins nothing, and a later return is an ordinary one.
  slowStart.healthFlipped(c, false);
  expect(slowStart.remainingMs(c)).toBeUndefined();
  slowStart.healthFlipped(c, true);
  expect(slowStart.remainingMs(c)).toBe(60_000);
  expect(logs.withMessage("slow start began").map((record) => record.cause)).toEqual(["turned healthy again"]);
});

test("SlowStart window ends when its id leaves or changes target", () => {
  const { slowStart, clock, logs } = start();
  const set = setOf("a", "b", "c");
  slowStart.begin(set.backends, "test");
  clock.advance(30_000);

  // b leaves, and c's new target begins a window of its own.
  const next = setOf("a", "c@2000");
  slowStart.setReplaced(set, next);
  expect(slowStart.remainingMs(next.get("a")!)).toBe(30_000);
  expect(slowStart.remainingMs(set.get("c")!)).toBeUndefined();
  expect(slowStart.remainingMs(next.get("c")!)).toBe(60_000);
  clock.advance(60_000);
  // The windows that the set change ended are not logged again.
  expect(logs.withMessage("slow start ended").map((record) => record.backend)).toEqual(["a", "c"]);
});

test("SlowStart reload applies a new window to those in progress", () => {
  const set = setOf("a", "b");
  const { slowStart, clock, logs } = start();
  slowStart.begin(set.backends, "test");
  clock.advance(20_000);

  // A longer window ramps on from the same start; b's own window of 10 s is over already.
  slowStart.configure({ durationMs: 120_000, byId: new Map([["b", 10_000]]) });
  expect(weights(slowStart, set)).toEqual({ a: 0.25, b: 1 });
  expect(logs.withMessage("slow start ended").map((record) => [record.backend, record.cause])).toEqual([["b", "its window is over"]]);

  slowStart.configure(SLOW_START_OFF);
  expect(slowStart.size).toBe(0);
  expect(clock.pending).toBe(0);
  expect(logs.withMessage("slow start ended").map((record) => [record.backend, record.cause])).toEqual([
    ["b", "its window is over"],
    ["a", "the reloaded config turned its slow start off"],
  ]);
});

test("SlowStart follower takes the leader's windows", () => {
  const set = setOf("a", "b");
  const leader = start();
  const follower = start(MINUTE, false);
  leader.slowStart.begin([set.get("a")!], "test");
  leader.clock.advance(15_000);
  follower.clock.advance(500_000);

  // Events that begin a window in the leader do nothing in a follower.
  follower.slowStart.begin([set.get("b")!], "test");
  follower.slowStart.healthFlipped(set.get("b")!, true);
  follower.slowStart.setReplaced(setOf("a"), set);
  expect(follower.slowStart.size).toBe(0);

  follower.slowStart.replace(leader.slowStart.windows());
  expect(leader.slowStart.windows()).toEqual([{ id: "a", target: set.get("a")!.target, elapsedMs: 15_000, durationMs: 60_000 }]);
  expect(weights(follower.slowStart, set)).toEqual(weights(leader.slowStart, set));
  // A reload in the follower keeps the leader's durations, which come with its next windows.
  follower.slowStart.configure(SLOW_START_OFF);
  expect(follower.slowStart.size).toBe(1);

  follower.clock.advance(45_000);
  expect(follower.slowStart.size).toBe(0);
  expect(follower.logs.withMessage("slow start ended").map((record) => record.level)).toEqual(["debug"]);
  expect(follower.logs.withMessage("slow start began")).toEqual([]);
});

test("SlowStart stop ends every window", () => {
  const set = setOf("a");
  const { slowStart, clock } = start();
  slowStart.begin(set.backends, "test");

  slowStart.stop();
  slowStart.begin(set.backends, "test");
  expect(slowStart.size).toBe(0);
  expect(clock.pending).toBe(0);
});
