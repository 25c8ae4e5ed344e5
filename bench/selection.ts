/**
 * Measures the time of one client's first pick, round-robin against leastconn, for sets of 10
 * and 10,000 backends with distinct targets, in one thread and with the counts `--workers` shares,
 * without slow start and with one backend of the set in a slow start window.
 *
 * Usage: node_modules/.bin/bun bench/selection.ts
 * Each pick reserves its backend, and the previous pick's reservation is released, so every
 * count stays at 0 or 1, as with short connections. Nothing is dialed or bound.
 */
import { createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import type { BackendSelector, BalanceMode } from "../src/backend-selector.ts";
import { ConnectionLimits } from "../src/connection-limits.ts";
import { FailoverPlan } from "../src/failover-plan.ts";
import { LeastConnectionsSelector } from "../src/least-connections-selector.ts";
import { silentLogger } from "../src/logger.ts";
import { RoundRobinSelector } from "../src/round-robin-selector.ts";
import { systemClock } from "../src/clock.ts";
import { SlowStart } from "../src/slow-start.ts";
import { SlowStartRotation } from "../src/slow-start-rotation.ts";
import { ThreadCounters } from "../src/thread-counters.ts";

/** Picks timed per case; the large set gets fewer, so each case takes about a second. */
const PICKS = { 10: 200_000, 10_000: 2_000 } as const;
/** Untimed picks first, so the timed ones run compiled code. */
const WARM_UP_PICKS = 500;

/** Returns the mean microseconds of one pick over `picks` picks. With `slowStart`, the first backend is in a window of 24 h. */
function timePicks(size: number, shared: boolean, mode: BalanceMode, slowStart: boolean, picks: number): number {
  const set = new BackendSet(Array.from({ length: size }, (_, index) => createBackend(`b${index}`, `10.${index >> 16}.${(index >> 8) & 255}.${index & 255}:6443`)));
  const counters = shared ? new ThreadCounters(undefined, true) : undefined;
  counters?.backendCounts?.assign(set.targets);
  const limits = new ConnectionLimits({ threads: shared ? 2 : 1, sharedBackendCounts: counters?.backendCounts }, silentLogger);
  const rotation = new RoundRobinSelector(set, counters);
  const windows = slowStart ? new SlowStart(systemClock) : undefined;
  windows?.configure({ durationMs: 86_400_000, byId: new Map() });
  windows?.begin([set.backends[0]!], "bench");
  let selector: BackendSelector = windows === undefined ? rotation : new SlowStartRotation(rotation, windows);
  if (mode === "leastconn") {
    limits.startCounting([]);
    selector = new LeastConnectionsSelector(rotation, limits, windows);
  }
  const checks = { isHealthy: () => true, reserve: (backend: { target: string }) => limits.tryReserve(backend.target) };

  let previous: string | undefined;
  const started = performance.now();
  for (let pick = 0; pick < picks; pick++) {
    const backend = new FailoverPlan(selector, checks, 0).first()!;
    if (previous !== undefined) {
      limits.release(previous);
    }
    previous = backend.target;
  }

  const microseconds = ((performance.now() - started) / picks) * 1000;
  windows?.stop();

  return microseconds;
}

for (const size of [10, 10_000] as const) {
  for (const shared of [false, true]) {
    for (const mode of ["roundrobin", "leastconn"] as const) {
      for (const slowStart of [false, true]) {
        timePicks(size, shared, mode, slowStart, WARM_UP_PICKS);
        const microseconds = timePicks(size, shared, mode, slowStart, PICKS[size]);
        const label = `${String(size).padStart(6)} backends, ${shared ? "shared counts" : "one thread   "}, ${mode.padEnd(10)}, ${slowStart ? "slow start" : "no window "}`;
        console.log(`${label}: ${microseconds.toFixed(2)} µs per pick`);
      }
    }
  }
}
