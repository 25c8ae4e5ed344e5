import { expect, test } from "bun:test";
import { type Backend, createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import { DisabledBackends } from "../src/disabled-backends.ts";
import { BackendPicker, FailoverPlan } from "../src/failover-plan.ts";
import { RoundRobinSelector } from "../src/round-robin-selector.ts";

// Targets are never dialled here; the port only makes targets differ.
function setOf(...entries: string[]): BackendSet {
  return new BackendSet(
    entries.map((entry) => {
      const [id, port] = entry.split("@");

      return createBackend(id!, `127.0.0.1:${port ?? 1000 + id!.charCodeAt(0)}`);
    }),
  );
}

function healthyExcept(...unhealthy: string[]): { isHealthy: (backend: Backend) => boolean; reserve: () => boolean } {
  return { isHealthy: (backend) => !unhealthy.includes(backend.id), reserve: () => true };
}

/** Runs a plan to the end, replacing the set right after the n-th pick when `replacements[n]` is given. */
function order(selector: RoundRobinSelector, plan: FailoverPlan, replacements: Record<number, BackendSet> = {}): string[] {
  const picked: string[] = [];
  let backend = plan.first();
  while (backend !== undefined) {
    picked.push(backend.id);
    const replacement = replacements[picked.length];
    if (replacement !== undefined) {
      selector.update(replacement);
    }
    backend = plan.next(backend);
  }

  return picked;
}

test.each([
  ["every backend healthy", [], 0, ["a", "b", "c", "d"]],
  ["b unhealthy is tried last", ["b"], 0, ["a", "c", "d", "b"]],
  ["a and c unhealthy", ["a", "c"], 0, ["b", "d", "a", "c"]],
  ["every backend unhealthy keeps rotation order", ["a", "b", "c", "d"], 0, ["a", "b", "c", "d"]],
  ["max attempts 2", [], 2, ["a", "b"]],
  ["max attempts above the set size", [], 9, ["a", "b", "c", "d"]],
] as const)("FailoverPlan order: %s", (_name, unhealthy, maxAttempts, expected) => {
  const selector = new RoundRobinSelector(setOf("a", "b", "c", "d"));
  const plan = new FailoverPlan(selector, healthyExcept(...unhealthy), maxAttempts);

  expect(order(selector, plan)).toEqual([...expected]);
  expect(plan.attempts).toBe(expected.length);
});

test("FailoverPlan starts where the shared rotation is", () => {
  const selector = new RoundRobinSelector(setOf("a", "b", "c"));
  const first = new FailoverPlan(selector, healthyExcept(), 0);
  const second = new FailoverPlan(selector, healthyExcept(), 0);

  expect(first.first()!.id).toBe("a");
  expect(second.first()!.id).toBe("b");
  // Failing over within one client does not move the shared rotation.
  expect(first.next(selector.set.get("a")!)!.id).toBe("b");
  expect(new FailoverPlan(selector, healthyExcept(), 0).first()!.id).toBe("c");
});

test("FailoverPlan follows set replacements without skips or repeats", () => {
  const selector = new RoundRobinSelector(setOf("a", "b", "c"));
  const plan = new FailoverPlan(selector, healthyExcept(), 0);

  const picked = order(selector, plan, {
    // After a: c leaves, d arrives.      Set: a b d
    1: setOf("a", "b", "d"),
    // After b: a points elsewhere now.   Set: a@2000 b d e
    2: setOf("a@2000", "b", "d", "e"),
  });

  // a@2000 is a new target for id a, so it counts as untried; b is never tried twice.
  expect(picked).toEqual(["a", "b", "d", "e", "a"]);
});

test("FailoverPlan skips ids sharing a failed target", () => {
  const selector = new RoundRobinSelector(setOf("a@2000", "b@2000", "c@3000", "d@2000"));
  const plan = new FailoverPlan(selector, healthyExcept(), 0);

  expect(order(selector, plan)).toEqual(["a", "c"]);
  expect(plan.attempts).toBe(2);
});

test("FailoverPlan ends when the set empties", () => {
  const selector = new RoundRobinSelector(setOf("a", "b"));
  const plan = new FailoverPlan(selector, healthyExcept(), 0);

  expect(order(selector, plan, { 1: BackendSet.EMPTY })).toEqual(["a"]);
});

test("FailoverPlan reserves only handed-out backends", () => {
  const selector = new RoundRobinSelector(setOf("a", "b", "c"));
  const reserved: string[] = [];
  const checks = {
    isHealthy: (backend: Backend) => backend.id !== "a",
    reserve: (backend: Backend) => {
      reserved.push(backend.id);

      return backend.id !== "b";
    },
  };
  const plan = new FailoverPlan(selector, checks, 0);

  // "a" is unhealthy, so it is not reserved while "c" is healthy and has room; "b" is full.
  expect(plan.first()?.id).toBe("c");
  expect(reserved).toEqual(["b", "c"]);
  // After "c" fails, the healthy "b" is still at its cap, so the unhealthy "a" is not tried.
  expect(plan.next(selector.set.get("c")!)).toBeUndefined();
  expect(reserved).toEqual(["b", "c", "b"]);
});

test("FailoverPlan: full healthy blocks unhealthy fallback", () => {
  const selector = new RoundRobinSelector(setOf("a", "b"));
  const full = { isHealthy: (backend: Backend) => backend.id === "a", reserve: (backend: Backend) => backend.id !== "a" };
  const down = { isHealthy: () => false, reserve: () => true };

  // "a" is healthy but at its cap: the client is closed as over the cap, not sent to "b".
  expect(new FailoverPlan(selector, full, 0).first()).toBeUndefined();
  // With every backend unhealthy, each is tried.
  expect(new FailoverPlan(selector, down, 0).first()).toBeDefined();
});

test("FailoverPlan: cooling backends are not tried when all are unhealthy", () => {
  const selector = new RoundRobinSelector(setOf("a", "b", "c", "d"));
  const checks = { isHealthy: () => false, isCoolingDown: (backend: Backend) => backend.id === "a" || backend.id === "c", reserve: () => true };

  // "a" and "c" failed a dial moments ago, so only "b" and "d" are tried.
  expect(order(selector, new FailoverPlan(selector, checks, 0))).toEqual(["b", "d"]);
  const allCooling = { ...checks, isCoolingDown: () => true };
  const picker = new BackendPicker(allCooling);
  expect(picker.pick(selector)).toBeUndefined();
  expect(picker.coolingDown).toBe(true);
  // A healthy backend still comes before every unhealthy one.
  const healthyC = { ...checks, isHealthy: (backend: Backend) => backend.id === "c" };
  expect(order(selector, new FailoverPlan(selector, healthyC, 0))[0]).toBe("c");
});

test("BackendPicker names a cap over cooling down", () => {
  const selector = new RoundRobinSelector(setOf("a", "b"));
  // Both backends are unhealthy: "a" failed a dial moments ago, and "b" is at its cap.
  const checks = { isHealthy: () => false, isCoolingDown: (backend: Backend) => backend.id === "a", reserve: (backend: Backend) => backend.id !== "b" };
  const picker = new BackendPicker(checks);

  expect(picker.pick(selector)).toBeUndefined();
  expect(picker.coolingDown).toBe(false);
});

test("FailoverPlan skips backends without room", () => {
  const selector = new RoundRobinSelector(setOf("a", "b", "c"));
  const plan = new FailoverPlan(selector, { isHealthy: () => true, reserve: (backend) => backend.id !== "a" }, 0);

  expect(order(selector, plan)).toEqual(["b", "c"]);
});

test.each([
  ["b disabled", [], ["b"], ["a", "c", "d"]],
  ["b disabled, c unhealthy", ["c"], ["b"], ["a", "d", "c"]],
  ["every enabled backend unhealthy", ["a", "c"], ["b", "d"], ["a", "c"]],
  ["every backend unhealthy, one disabled", ["a", "b", "c", "d"], ["a"], ["b", "c", "d"]],
  ["every backend disabled", [], ["a", "b", "c", "d"], []],
] as const)("FailoverPlan never tries a disabled backend: %s", (_name, unhealthy, disabledIds, expected) => {
  const disabled = new DisabledBackends();
  disabled.replace([...disabledIds]);
  const selector = new RoundRobinSelector(setOf("a", "b", "c", "d"), undefined, disabled);
  const plan = new FailoverPlan(selector, healthyExcept(...unhealthy), 0);

  expect(order(selector, plan)).toEqual([...expected]);
});

test("FailoverPlan skips a backend disabled during failover", () => {
  const disabled = new DisabledBackends();
  const selector = new RoundRobinSelector(setOf("a", "b", "c"), undefined, disabled);
  const plan = new FailoverPlan(selector, healthyExcept(), 0);

  const first = plan.first()!;
  disabled.disable("b");

  expect(first.id).toBe("a");
  expect(plan.next(first)?.id).toBe("c");
});

test("FailoverPlan keeps a given-up dial's target eligible", () => {
  const disabled = new DisabledBackends();
  // a and a2 share a target; only a is disabled while its dial is in flight.
  const selector = new RoundRobinSelector(setOf("a@2000", "a2@2000", "b"), undefined, disabled);
  const givenUp = new FailoverPlan(selector, healthyExcept(), 0);
  const failed = new FailoverPlan(selector, healthyExcept(), 0);

  const first = givenUp.first()!;
  expect(first.id).toBe("a");
  disabled.disable("a");
  expect(givenUp.next(first, false)?.id).toBe("a2");

  disabled.enable("a");
  const second = failed.first()!;
  expect(second.id).toBe("a2");
  expect(failed.next(second)?.id).toBe("b");
});

test("FailoverPlan given-up dial uses no attempt", () => {
  const selector = new RoundRobinSelector(setOf("a", "b", "c"));
  const plan = new FailoverPlan(selector, healthyExcept(), 1);

  // The dial of a was given up by tinylb (its target left the set), so b is still tried.
  const first = plan.first()!;
  expect(first.id).toBe("a");
  const second = plan.next(first, false);
  expect(second?.id).toBe("b");
  // b failed: that is the one attempt of maxAttempts 1.
  expect(plan.next(second!)).toBeUndefined();
});
