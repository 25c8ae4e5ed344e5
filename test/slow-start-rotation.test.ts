import { expect, test } from "bun:test";
import { type Backend, createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import { FailoverPlan } from "../src/failover-plan.ts";
import { RoundRobinSelector } from "../src/round-robin-selector.ts";
import type { SlowStartWeights } from "../src/slow-start.ts";
import { SlowStartRotation } from "../src/slow-start-rotation.ts";
import { ThreadCounters } from "../src/thread-counters.ts";

// Targets are never dialled here.
function setOf(...ids: string[]): BackendSet {
  return new BackendSet(ids.map((id) => createBackend(id, `127.0.0.1:${1000 + id.charCodeAt(0)}`)));
}

/** Weights that change only when the test changes them; ids not listed weigh 1. */
function fixedWeights(byId: Record<string, number>): SlowStartWeights & { byId: Record<string, number> } {
  return {
    byId,
    get size() {
      return Object.keys(this.byId).length;
    },
    now: () => 0,
    weightOf(backend) {
      return this.byId[backend.id] ?? 1;
    },
  };
}

function picks(selector: SlowStartRotation, count: number, accept?: (backend: Backend) => boolean): (string | undefined)[] {
  return Array.from({ length: count }, () => selector.next(accept)?.id);
}

function tally(ids: (string | undefined)[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const id of ids) {
    counts[String(id)] = (counts[String(id)] ?? 0) + 1;
  }

  return counts;
}

test("SlowStartRotation is round-robin without windows", () => {
  const selector = new SlowStartRotation(new RoundRobinSelector(setOf("a", "b", "c")), fixedWeights({}));

  expect(picks(selector, 7)).toEqual(["a", "b", "c", "a", "b", "c", "a"]);
});

test("SlowStartRotation gives a weight of 0.1 one in 10 turns", () => {
  const selector = new SlowStartRotation(new RoundRobinSelector(setOf("a", "b", "c")), fixedWeights({ c: 0.1 }));

  // c's first nine turns go to a, so the cycle is a, b until c's tenth turn; then it goes on after c.
  const expected = [...Array.from({ length: 10 }, () => ["a", "b"]).flat(), "c", "a", "b"];
  expect(picks(selector, 23)).toEqual(expected);
});

test.each([
  [0.1, { a: 100, b: 100, c: 10 }],
  [0.25, { a: 100, b: 100, c: 25 }],
  [0.5, { a: 100, b: 100, c: 50 }],
  [0.9, { a: 100, b: 100, c: 90 }],
])("SlowStartRotation with weight %p gives its share", (weight, expected) => {
  const selector = new SlowStartRotation(new RoundRobinSelector(setOf("a", "b", "c")), fixedWeights({ c: weight }));

  // Shares of 1 : 1 : weight, over a whole number of credit cycles.
  const count = 200 + expected.c;
  expect(tally(picks(selector, count))).toEqual(expected);
});

test("SlowStartRotation follows a weight that grows", () => {
  const weights = fixedWeights({ c: 0.1 });
  const selector = new SlowStartRotation(new RoundRobinSelector(setOf("a", "b", "c")), weights);
  const shares: number[] = [];

  const steps = [0.1, 0.4, 0.7, 1];
  for (const weight of steps) {
    weights.byId.c = weight;
    shares.push(tally(picks(selector, 210)).c ?? 0);
  }

  // Each step gets about weight / (2 + weight) of the clients; credit carried over from the step before may add or take one.
  steps.forEach((weight, step) => expect(Math.abs(shares[step]! - (210 * weight) / (2 + weight))).toBeLessThanOrEqual(1));
  expect(shares[3]).toBe(70);
});

test("SlowStartRotation passes over a backend at its cap and keeps its credit", () => {
  const selector = new SlowStartRotation(new RoundRobinSelector(setOf("a", "b", "c")), fixedWeights({ c: 0.5 }));
  let cFull = true;

  // c's second turn makes a whole client, but c is at its cap: a takes it.
  expect(picks(selector, 5, (backend) => backend.id !== "c" || !cFull)).toEqual(["a", "b", "a", "b", "a"]);
  cFull = false;
  // The credit is kept, so c takes its next turn.
  expect(picks(selector, 3, (backend) => backend.id !== "c" || !cFull)).toEqual(["b", "c", "a"]);
});

test("SlowStartRotation serves a client when only backends in slow start take it", () => {
  const selector = new SlowStartRotation(new RoundRobinSelector(setOf("a", "b", "c")), fixedWeights({ b: 0.1, c: 0.1 }));
  const healthy = (backend: Backend): boolean => backend.id !== "a";

  // Every turn goes to b or c, in rotation order, although neither has a whole client of credit.
  expect(picks(selector, 4, healthy)).toEqual(["b", "c", "b", "c"]);
});

test("SlowStartRotation failover ignores slow start", () => {
  const set = setOf("a", "b", "c");
  const selector = new SlowStartRotation(new RoundRobinSelector(set), fixedWeights({ b: 0.1 }));

  expect(selector.following("a", () => true)?.id).toBe("b");

  // A client whose first backend fails tries the one in slow start next.
  const plan = new FailoverPlan(selector, { isHealthy: () => true, reserve: () => true }, 0);
  const first = plan.first()!;
  expect(first.id).toBe("a");
  expect(plan.next(first)?.id).toBe("b");
});

test("SlowStartRotation degraded picks still reach a backend in slow start", () => {
  const set = setOf("a", "b");
  const selector = new SlowStartRotation(new RoundRobinSelector(set), fixedWeights({ b: 0.1 }));
  // Every backend is unhealthy, as in degraded mode, and only b has room.
  const plan = new FailoverPlan(selector, { isHealthy: () => false, reserve: (backend) => backend.id === "b" }, 0);

  expect(plan.first()?.id).toBe("b");
});

test("SlowStartRotation shares turns between threads", () => {
  const set = setOf("a", "b", "c");
  const counters = new ThreadCounters();
  const weights = fixedWeights({ c: 0.5 });
  const threads = [new SlowStartRotation(new RoundRobinSelector(set, counters), weights), new SlowStartRotation(new RoundRobinSelector(set, counters), weights)];

  // Each thread keeps its own credit, so c gets half of the turns that reach it in each thread.
  const ids = Array.from({ length: 250 }, (_, index) => threads[index % 2]!.next()?.id);
  expect(tally(ids)).toEqual({ a: 100, b: 100, c: 50 });
});
