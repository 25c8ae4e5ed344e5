import type { Clock } from "./clock.ts";
import type { Logger } from "./logger.ts";
import { RateLimitedLog } from "./rate-limited-log.ts";
import type { TrafficStats } from "./traffic-stats.ts";

/** Limits on the traffic counters that the main thread keeps for retired backend ids. */
export interface CounterRetentionSettings {
  /** Milliseconds a retired id keeps its counters. */
  retentionMs: number;
  /** Maximum number of retired ids that keep their counters. Beyond it, the longest retired are dropped first. */
  maxRetiredIds: number;
  /** Milliseconds between two checks for ids to retire and counters to drop. */
  checkIntervalMs: number;
}

/**
 * Keeps a retired id's series for 5 minutes, the default query lookback of Prometheus
 * (`--query.lookback-delta`), so a scrape every 15 to 60 s reads its final values several
 * times even when one or two scrapes fail. At most 1,000 retired ids are kept, so a provider
 * that replaces ids faster than that cannot grow the counters without bound.
 */
export const DEFAULT_COUNTER_RETENTION: CounterRetentionSettings = {
  retentionMs: 5 * 60_000,
  maxRetiredIds: 1000,
  checkIntervalMs: 1000,
};

/** Milliseconds between two warnings about counters dropped before the retention time. */
const EARLY_DROP_LOG_INTERVAL_MS = 60_000;

/**
 * Drops the traffic counters of backend ids that are no longer used, once scrapes had time to
 * read their final values. It runs in the main thread only, because a relay worker drops an
 * id's counters as soon as it sent their last delta (see StatsDeltas).
 *
 * An id is retired at the first check that finds it unused: not in the set, and with no open
 * connection or dial in flight in any thread (`usage`). Its counters are dropped
 * `retentionMs` later, or earlier when more than `maxRetiredIds` ids are retired, the longest
 * retired first. An id used again before its counters are dropped is no longer retired and
 * continues from them; one used again after that counts from 0.
 */
export class CounterRetention {
  readonly #stats: TrafficStats;
  readonly #usage: () => (id: string) => boolean;
  readonly #settings: CounterRetentionSettings;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #earlyDropLog: RateLimitedLog;
  /** Retired ids and the clock time each was retired at, longest retired first. */
  readonly #retiredAt = new Map<string, number>();
  #interval: Timer | undefined;

  /** @param usage returns a test of whether an id is used now; it is called once per check. */
  constructor(stats: TrafficStats, usage: () => (id: string) => boolean, settings: CounterRetentionSettings, clock: Clock, log: Logger) {
    this.#stats = stats;
    this.#usage = usage;
    this.#settings = settings;
    this.#clock = clock;
    this.#log = log;
    this.#earlyDropLog = new RateLimitedLog(log, "warn", EARLY_DROP_LOG_INTERVAL_MS, () => clock.now());
  }

  /** Retired ids whose counters are still kept. */
  get retiredIds(): number {
    return this.#retiredAt.size;
  }

  /** Checks every `checkIntervalMs` until `stop`. The interval does not keep the process running. */
  start(): void {
    this.stop();
    // A runtime interval rather than a timer of the clock: the check only frees memory, and
    // tests that drive a fake clock count the timers of the parts they test.
    this.#interval = setInterval(() => this.check(), this.#settings.checkIntervalMs);
    this.#interval.unref();
  }

  stop(): void {
    clearInterval(this.#interval);
    this.#interval = undefined;
  }

  /** Retires the ids that are no longer used, takes back those used again, and drops the counters whose time or room ran out. */
  check(): void {
    const now = this.#clock.now();
    this.#retireUnused(now);
    this.#dropExpired(now);
  }

  #retireUnused(now: number): void {
    const isUsed = this.#usage();
    for (const id of this.#stats.ids()) {
      if (isUsed(id)) {
        this.#retiredAt.delete(id);
      } else if (!this.#retiredAt.has(id)) {
        this.#retiredAt.set(id, now);
      }
    }
  }

  /** Drops counters from the longest retired on, while they are past the retention time or over the maximum count. */
  #dropExpired(now: number): void {
    const { retentionMs, maxRetiredIds } = this.#settings;
    for (const [id, retiredAt] of this.#retiredAt) {
      const expired = now - retiredAt >= retentionMs;
      if (!expired && this.#retiredAt.size <= maxRetiredIds) {
        break;
      }

      this.#retiredAt.delete(id);
      this.#stats.delete(id);
      const fields = { backend: id, retiredMs: Math.round(now - retiredAt) };
      if (expired) {
        this.#log.debug("dropped the counters of a retired backend", fields);
      } else {
        this.#earlyDropLog.log("dropped the counters of a retired backend before the retention time: too many retired backends", { ...fields, maxRetired: maxRetiredIds });
      }
    }
  }
}
