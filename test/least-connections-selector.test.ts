import { describe, expect, test } from "bun:test";
import { type Backend, createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import { ConnectionLimits } from "../src/connection-limits.ts";
import { FailoverPlan } from "../src/failover-plan.ts";
import { LeastConnectionsSelector } from "../src/least-connections-selector.ts";
import { Logger } from "../src/logger.ts";
import { RoundRobinSelector } from "../src/round-robin-selector.ts";
import type { SlowStartWeights } from "../src/slow-start.ts";
import { ThreadCounters } from "../src/thread-counters.ts";

// Targets are never dialled here. An entry "id@port" gives the id that port, so that ids can share a target.
function setOf(...entries: string[]): BackendSet {
  return new BackendSet(
    entries.map((entry) => {
      const [id, port] = entry.split("@");

      return createBackend(id!, `127.0.0.1:${port ?? 1000 + id!.charCodeAt(0)}`);
    }),
  );
}

/** Fixed counts per backend id; ids not listed count 0. */
function fixedCounts(set: BackendSet, byId: Record<string, number>): { count: (target: string) => number } {
  const byTarget = new Map(set.backends.map((backend) => [backend.target, byId[backend.id] ?? 0]));

  return { count: (target) => byTarget.get(target) ?? 0 };
}

/** Builds a selector over `set` whose counts are ConnectionLimits reservations, as a server with leastconn keeps them. */
function counted(set: BackendSet, limitOptions: { maxConnectionsPerBackend?: number } = {}): { selector: LeastConnectionsSelector; limits: ConnectionLimits } {
  const limits = new ConnectionLimits(limitOptions, new Logger({ sink: () => {} }));
  limits.startCounting([]);

  return { selector: new LeastConnectionsSelector(new RoundRobinSelector(set), limits), limits };
}

/** Reserves `count` connections to the target of each backend id, as open connections would hold. */
function hold(limits: ConnectionLimits, set: BackendSet, byId: Record<string, number>): void {
  for (const [id, count] of Object.entries(byId)) {
    for (let i = 0; i < count; i++) {
      expect(limits.tryReserve(set.get(id)!.target)).toBe(true);
    }
  }
}

function checks(limits: ConnectionLimits, unhealthy: string[] = []): { isHealthy: (backend: Backend) => boolean; reserve: (backend: Backend) => boolean } {
  return { isHealthy: (backend) => !unhealthy.includes(backend.id), reserve: (backend) => limits.tryReserve(backend.target) };
}

/** First picks of `count` new clients whose dials are all still in flight. */
function burst(selector: LeastConnectionsSelector, limits: ConnectionLimits, count: number, unhealthy: string[] = []): (string | undefined)[] {
  return Array.from({ length: count }, () => new FailoverPlan(selector, checks(limits, unhealthy), 0).first()?.id);
}

/**
 * Runs one client's plan to the end, every dial failing, and returns the ids in the order
 * tried. With `limits`, each failed dial gives its reservation back, as the server does.
 */
function failoverOrder(plan: FailoverPlan, limits?: ConnectionLimits): string[] {
  const tried: string[] = [];
  for (let backend = plan.first(); backend !== undefined; backend = plan.next(backend)) {
    tried.push(backend.id);
    limits?.release(backend.target);
  }

  return tried;
}

describe("LeastConnectionsSelector", () => {
  test("yields nothing for an empty set", () => {
    const selector = new LeastConnectionsSelector(new RoundRobinSelector(), { count: () => 0 });

    expect(selector.next()).toBeUndefined();
    expect(selector.following("a", () => true)).toBeUndefined();
  });

  test("breaks ties by the rotation", () => {
    const set = setOf("a", "b", "c");
    const selector = new LeastConnectionsSelector(new RoundRobinSelector(set), fixedCounts(set, {}));

    // Counts that never change: every pick is a tie, so the order is round-robin's.
    expect(Array.from({ length: 7 }, () => selector.next()?.id)).toEqual(["a", "b", "c", "a", "b", "c", "a"]);
  });

  test.each([
    ["the lowest count wins", { a: 2, b: 0, c: 1 }, "b"],
    ["the lowest count wins over the rotation", { a: 1, b: 1, c: 0 }, "c"],
    ["a tie of two goes to the first in rotation", { a: 3, b: 1, c: 1 }, "b"],
  ] as const)("picks the least loaded: %s", (_name, counts, expected) => {
    const set = setOf("a", "b", "c");
    const selector = new LeastConnectionsSelector(new RoundRobinSelector(set), fixedCounts(set, counts));

    expect(selector.next()?.id).toBe(expected);
  });

  test("moves the rotation past the pick", () => {
    const set = setOf("a", "b", "c", "d");
    const rotation = new RoundRobinSelector(set);
    const selector = new LeastConnectionsSelector(rotation, fixedCounts(set, { a: 1, b: 1, c: 0, d: 1 }));

    expect(selector.next()?.id).toBe("c");
    // The rotation goes on after c: d is next in turn.
    expect(rotation.next()?.id).toBe("d");
  });

  test("offers each backend once per pick", () => {
    const set = setOf("a", "b", "c", "d");
    const selector = new LeastConnectionsSelector(new RoundRobinSelector(set), fixedCounts(set, { a: 3, b: 0, c: 2, d: 0 }));
    const offered: string[] = [];

    expect(
      selector.next((backend) => {
        offered.push(backend.id);

        return false;
      }),
    ).toBeUndefined();
    // Lowest count first, each level in rotation order.
    expect(offered).toEqual(["b", "d", "c", "a"]);
  });

  test("leaves out what candidate rejects", () => {
    const set = setOf("a", "b", "c");
    const selector = new LeastConnectionsSelector(new RoundRobinSelector(set), fixedCounts(set, { a: 0, b: 1, c: 2 }));
    const offered: string[] = [];
    const accept = (backend: Backend): boolean => {
      offered.push(backend.id);

      return backend.id !== "a";
    };

    expect(selector.next(accept, (backend) => backend.id !== "a")?.id).toBe("b");
    expect(offered).toEqual(["b"]);
  });

  test("counts dials in flight", () => {
    const set = setOf("a", "b", "c");
    const { selector, limits } = counted(set);
    hold(limits, set, { a: 1, b: 1 });

    // No dial completes: c gets the first client, then its dial counts and the three tie.
    expect(burst(selector, limits, 5)).toEqual(["c", "a", "b", "c", "a"]);
    expect(set.backends.map((backend) => limits.count(backend.target))).toEqual([3, 2, 2]);
  });

  test("sends new clients to a returning backend", () => {
    const withoutC = setOf("a", "b");
    const rotation = new RoundRobinSelector(withoutC);
    const limits = new ConnectionLimits({}, new Logger({ sink: () => {} }));
    limits.startCounting([]);
    const selector = new LeastConnectionsSelector(rotation, limits);
    hold(limits, withoutC, { a: 3, b: 3 });

    rotation.update(setOf("a", "b", "c"));
    expect(burst(selector, limits, 3)).toEqual(["c", "c", "c"]);
    // Even again: the next three go one to each.
    expect(burst(selector, limits, 3).sort()).toEqual(["a", "b", "c"]);
  });

  test("tries unhealthy backends last", () => {
    const set = setOf("a", "b", "c");
    const { selector, limits } = counted(set);
    hold(limits, set, { b: 2, c: 1 });

    // a has the fewest connections but is unhealthy, so the least loaded healthy one goes
    // first, and a is tried only after every healthy one failed.
    expect(failoverOrder(new FailoverPlan(selector, checks(limits, ["a"]), 0), limits)).toEqual(["c", "b", "a"]);
    // With every backend unhealthy, each is tried, the least loaded first.
    const counts = fixedCounts(set, { a: 2, b: 0, c: 1 });
    const everyUnhealthy = new LeastConnectionsSelector(new RoundRobinSelector(set), counts);
    expect(failoverOrder(new FailoverPlan(everyUnhealthy, { isHealthy: () => false, reserve: () => true }, 0))).toEqual(["b", "c", "a"]);
  });

  test("skips backends at their cap", () => {
    const set = setOf("a", "b", "c");
    const { selector, limits } = counted(set, { maxConnectionsPerBackend: 2 });
    hold(limits, set, { a: 2, b: 1 });

    expect(burst(selector, limits, 4)).toEqual(["c", "b", "c", undefined]);
    expect(set.backends.map((backend) => limits.count(backend.target))).toEqual([2, 2, 2]);
  });

  test("skips unhealthy while healthy at cap", () => {
    const set = setOf("a", "b");
    const { selector, limits } = counted(set, { maxConnectionsPerBackend: 1 });
    hold(limits, set, { a: 1 });

    // a is healthy but full, and b is unhealthy and empty. The client is closed as over the cap.
    expect(burst(selector, limits, 1, ["b"])).toEqual([undefined]);
    expect(limits.count(set.get("b")!.target)).toBe(0);
  });

  test("fails over to the next least loaded", () => {
    const set = setOf("a", "b", "c", "d");
    const { selector, limits } = counted(set);
    hold(limits, set, { a: 3, b: 1, c: 2 });

    // Every dial fails and gives its reservation back, so d returns to 0 but is not tried again.
    expect(failoverOrder(new FailoverPlan(selector, checks(limits), 0), limits)).toEqual(["d", "b", "c", "a"]);
    expect(set.backends.map((backend) => limits.count(backend.target))).toEqual([3, 1, 2, 0]);
  });

  test("fails over without moving the rotation", () => {
    const set = setOf("a", "b", "c");
    const rotation = new RoundRobinSelector(set);
    const selector = new LeastConnectionsSelector(rotation, fixedCounts(set, {}));

    expect(selector.next()?.id).toBe("a");
    // Ties after a failure go to the backend after the failed one in the set's order.
    expect(selector.following("a", () => true)?.id).toBe("b");
    expect(selector.following("c", () => true)?.id).toBe("a");
    expect(rotation.next()?.id).toBe("b");
  });

  test("fails over past ids of the failed target", () => {
    const set = setOf("a@2000", "b@2000", "c@3000", "d@4000");
    const { selector, limits } = counted(set);
    hold(limits, set, { c: 1, d: 2 });

    // a fails: b shares its dead target and is skipped though it is the least loaded.
    expect(failoverOrder(new FailoverPlan(selector, checks(limits), 0), limits)).toEqual(["a", "c", "d"]);
  });

  test("passes over disabled backends", () => {
    const set = setOf("a", "b", "c");
    const rotation = new RoundRobinSelector(set, undefined, new Set(["a"]));
    const selector = new LeastConnectionsSelector(rotation, fixedCounts(set, { a: 0, b: 2, c: 1 }));

    // a has the fewest connections but is disabled, so neither a new client nor a failover gets it.
    expect(selector.next()?.id).toBe("c");
    expect(selector.following("c", (backend) => backend.id !== "c")?.id).toBe("b");
  });

  test("compares the counts of every thread", () => {
    const set = setOf("a", "b");
    const mainCounters = new ThreadCounters(undefined, true);
    const workerCounters = new ThreadCounters(mainCounters.buffer);
    const logger = new Logger({ sink: () => {} });
    const mainLimits = new ConnectionLimits({ threads: 2, sharedBackendCounts: mainCounters.backendCounts }, logger);
    const workerLimits = new ConnectionLimits({ threads: 2, sharedBackendCounts: workerCounters.backendCounts }, logger);
    workerCounters.backendCounts!.learn(mainCounters.backendCounts!.assign(set.targets));
    mainLimits.startCounting([]);
    workerLimits.startCounting([]);

    // The main thread has two connections open to a. The worker has none, but still sends its clients to b.
    hold(mainLimits, set, { a: 2 });
    const worker = new LeastConnectionsSelector(new RoundRobinSelector(set), workerLimits);
    expect(burst(worker, workerLimits, 2)).toEqual(["b", "b"]);
    expect(mainLimits.count(set.get("b")!.target)).toBe(2);
  });
});

/** Weights that change only when the test changes them; ids not listed weigh 1. */
function fixedWeights(byId: Record<string, number>): SlowStartWeights {
  return { size: Object.keys(byId).length, now: () => 0, weightOf: (backend) => byId[backend.id] ?? 1 };
}

/** Builds a selector over `set` with leastconn reservations as counts and `weights` as slow start. */
function weighted(set: BackendSet, weights: SlowStartWeights, limitOptions: { maxConnectionsPerBackend?: number } = {}): { selector: LeastConnectionsSelector; limits: ConnectionLimits } {
  const limits = new ConnectionLimits(limitOptions, new Logger({ sink: () => {} }));
  limits.startCounting([]);

  return { selector: new LeastConnectionsSelector(new RoundRobinSelector(set), limits, weights), limits };
}

describe("LeastConnectionsSelector with slow start", () => {
  test("fills a returning backend up to its weight", () => {
    const set = setOf("a", "b", "c");
    const { selector, limits } = weighted(set, fixedWeights({ c: 0.1 }));
    hold(limits, set, { a: 3, b: 3 });

    // count / weight: a and b score 3, c scores 0 and takes the first client. It then scores
    // 1 / 0.1 = 10, and a and b take clients until they score 10 too.
    expect(burst(selector, limits, 15)).toEqual(["c", "a", "b", "a", "b", "a", "b", "a", "b", "a", "b", "a", "b", "a", "b"]);
  });

  test("gives a backend its weight's share of short connections", () => {
    const set = setOf("a", "b", "c");
    const { selector, limits } = weighted(set, fixedWeights({ c: 0.25 }));

    // Each client closes before the next arrives, so every count is 0 and every pick is a tie.
    // c takes one of each four turns that reach it, so it gets a quarter of what a and b get:
    // one client in every nine.
    const ids = Array.from({ length: 36 }, () => {
      const backend = new FailoverPlan(selector, checks(limits), 0).first()!;
      limits.release(backend.target);

      return backend.id;
    });
    expect(ids.filter((id) => id === "c").length).toBe(4);
    expect(ids.filter((id) => id === "a").length).toBe(16);
    expect(ids.filter((id) => id === "b").length).toBe(16);
  });

  test.each([
    [0.1, 1],
    [0.5, 5],
    [1, 10],
  ])("keeps a backend of weight %p near that share", (weight, expectedForC) => {
    const set = setOf("a", "b", "c");
    const { selector, limits } = weighted(set, fixedWeights({ c: weight }));

    // c ends up with about its weight times the others' count: count / weight stays level with theirs.
    const ids = burst(selector, limits, 20 + expectedForC);
    expect(ids.filter((id) => id === "c").length).toBe(expectedForC);
  });

  test("reads no weights without windows", () => {
    const set = setOf("a", "b", "c");
    const { selector, limits } = weighted(set, fixedWeights({}));
    hold(limits, set, { a: 3, b: 3 });

    expect(burst(selector, limits, 3)).toEqual(["c", "c", "c"]);
  });

  test("skips a backend in slow start at its cap", () => {
    const set = setOf("a", "b", "c");
    const { selector, limits } = weighted(set, fixedWeights({ c: 0.1 }), { maxConnectionsPerBackend: 4 });
    hold(limits, set, { a: 4, b: 3, c: 3 });

    // b scores 4 and takes the first client. Then a and b are at their cap, and c, which scores 40, takes the next.
    expect(burst(selector, limits, 3)).toEqual(["b", "c", undefined]);
  });

  test("fails over by counts alone", () => {
    const set = setOf("a", "b", "c");
    const { selector, limits } = weighted(set, fixedWeights({ c: 0.1 }));
    hold(limits, set, { a: 3, b: 2, c: 1 });

    // The first pick weighs c down (1 / 0.1 = 10), but failover goes to the backend with the fewest connections.
    const plan = new FailoverPlan(selector, checks(limits), 0);
    expect(failoverOrder(plan, limits)).toEqual(["b", "c", "a"]);
  });

  test("tries a backend in slow start when every backend is unhealthy", () => {
    const set = setOf("a", "b");
    const { selector, limits } = weighted(set, fixedWeights({ b: 0.1 }));
    hold(limits, set, { a: 1, b: 1 });

    // Degraded: health is ignored, and b's score of 1 / 0.1 = 10 puts it after a's 1, but it is still tried.
    expect(failoverOrder(new FailoverPlan(selector, checks(limits, ["a", "b"]), 0), limits)).toEqual(["a", "b"]);
  });
});
