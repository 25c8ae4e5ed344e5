import { expect, test } from "bun:test";
import { type Backend, createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import { ConnectionPool, type PooledConnection } from "../src/connection-pool.ts";
import { HealthChecker } from "../src/health-checker.ts";
import { RemovalPolicies, type RemovalPolicyOptions } from "../src/removal-policies.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { LogLines } from "./support/log-lines.ts";

/**
 * A stand-in for a relayed connection: the policies only close connections through the
 * pool, so a stub that records the close and leaves the pool, as a real connection does
 * when its sockets close, is enough.
 */
class StubConnection implements PooledConnection {
  closedWith: string | undefined;

  constructor(
    readonly id: number,
    readonly target: string,
    private readonly pool: ConnectionPool<StubConnection>,
  ) {}

  close(reason: string): void {
    this.closedWith = reason;
    this.pool.delete(this);
  }
}

const a = createBackend("a", "127.0.0.1:7001");
const b = createBackend("b", "127.0.0.1:7002");

function setOf(...backends: Backend[]): BackendSet {
  return new BackendSet(backends);
}

/** Builds policies over a pool with one connection to each of `a` and `b`, and a health checker that tracks both. */
function scenario(options: Partial<RemovalPolicyOptions>) {
  const logs = new LogLines();
  const clock = new FakeClock();
  const pool = new ConnectionPool<StubConnection>();
  const health = new HealthChecker({ clock, logger: logs.logger });
  health.update(setOf(a, b));
  const policies = new RemovalPolicies(pool, health, logs.logger, clock, { onRemoval: "close", drainTimeoutMs: 5000, onUnhealthy: "keep", ...options });
  const toA = new StubConnection(1, a.target, pool);
  const toB = new StubConnection(2, b.target, pool);
  pool.add(toA);
  pool.add(toB);

  return { logs, clock, pool, health, policies, toA, toB };
}

test("RemovalPolicies closes only the removed target", () => {
  const { logs, policies, toA, toB } = scenario({ onRemoval: "close" });

  policies.setReplaced(setOf(a, b), setOf(b));

  expect(toA.closedWith).toBe("target left the backend set");
  expect(toB.closedWith).toBeUndefined();
  const [line] = logs.withMessage("closed connections of removed target");
  expect(line?.backend).toBe("a");
  expect(line?.target).toBe(a.target);
  expect(line?.closed).toBe(1);
});

test("RemovalPolicies drains a removed target until the deadline", () => {
  const { clock, policies, toA, toB } = scenario({ onRemoval: "drain", drainTimeoutMs: 5000 });

  policies.setReplaced(setOf(a, b), setOf(b));
  clock.advance(4999);
  expect(toA.closedWith).toBeUndefined();

  clock.advance(1);
  expect(toA.closedWith).toBe("drain timeout of removed target");
  expect(toB.closedWith).toBeUndefined();
});

test("RemovalPolicies keeps a drained target that comes back", () => {
  const { clock, logs, policies, toA } = scenario({ onRemoval: "drain", drainTimeoutMs: 5000 });

  policies.setReplaced(setOf(a, b), setOf(b));
  clock.advance(1000);
  policies.setReplaced(setOf(b), setOf(a, b));
  clock.advance(10_000);

  expect(toA.closedWith).toBeUndefined();
  expect(logs.withMessage("removed target is back in the backend set; its connections stay open").length).toBe(1);
});

test("RemovalPolicies keeps other threads' drain deadline", () => {
  const c = createBackend("c", "127.0.0.1:7003");
  const single = scenario({ onRemoval: "drain", drainTimeoutMs: 5000 });
  const threaded = scenario({ onRemoval: "drain", drainTimeoutMs: 5000, threads: 2 });
  const worker = scenario({ onRemoval: "drain", drainTimeoutMs: 5000, threads: 2, threadIndex: 1 });

  // "c" has no connection in this thread; with relay workers, others may hold some.
  for (const { policies } of [single, threaded, worker]) {
    policies.setReplaced(setOf(a, b, c), setOf(a, b));
  }

  expect(single.policies.drainRemainingMs(c.target)).toBeUndefined();
  // Only the main thread serves the status, so a relay worker keeps no such deadline.
  expect(worker.policies.drainRemainingMs(c.target)).toBeUndefined();
  expect(threaded.policies.drainRemainingMs(c.target)).toBe(5000);
  expect(threaded.logs.withMessage("draining connections of removed target")).toHaveLength(0);
  threaded.clock.advance(5000);
  expect(threaded.policies.drainRemainingMs(c.target)).toBeUndefined();
});

test("RemovalPolicies cancelDrains stops every deadline", () => {
  const { clock, policies, toA } = scenario({ onRemoval: "drain", drainTimeoutMs: 5000 });

  policies.setReplaced(setOf(a, b), setOf(b));
  policies.cancelDrains();
  clock.advance(10_000);

  expect(toA.closedWith).toBeUndefined();
  expect(clock.pending).toBe(0);
});

test.each([
  { onUnhealthy: "keep" as const, healthy: false, closed: undefined },
  { onUnhealthy: "close" as const, healthy: true, closed: undefined },
  { onUnhealthy: "close" as const, healthy: false, closed: "backend turned unhealthy" },
])("RemovalPolicies onUnhealthy $onUnhealthy, healthy $healthy", ({ onUnhealthy, healthy, closed }) => {
  const { policies, toA, toB } = scenario({ onUnhealthy });

  policies.healthFlipped(a, healthy);

  expect(toA.closedWith).toBe(closed);
  expect(toB.closedWith).toBeUndefined();
});

test("RemovalPolicies keeps connections while degraded", () => {
  const { health, logs, policies, toA } = scenario({ onUnhealthy: "close" });
  health.dialFailed(a, "connect refused");
  health.dialFailed(b, "connect refused");
  expect(health.degraded).toBe(true);

  policies.healthFlipped(a, false);

  expect(toA.closedWith).toBeUndefined();
  expect(logs.withMessage("kept connections of unhealthy backend because every enabled backend is unhealthy").length).toBe(1);
});
