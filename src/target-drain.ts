import { type Clock, type ClockTimer, systemClock } from "./clock.ts";
import type { ConnectionPool } from "./connection-pool.ts";
import { formatDuration } from "./duration.ts";
import type { Logger } from "./logger.ts";

/** Policies for the open connections of a target that leaves the backend set. */
export const REMOVAL_POLICIES = ["close", "drain"] as const;
export type RemovalPolicy = (typeof REMOVAL_POLICIES)[number];

/**
 * Removed targets whose open connections may finish before a deadline. New clients never
 * reach a draining target, because it is no longer in the set; at the deadline the
 * connections still open are closed. A target that comes back into the set before its
 * deadline keeps its connections.
 */
export class TargetDrains {
  readonly #pool: ConnectionPool;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #timers = new Map<string, ClockTimer>();
  /** Clock time of each draining target's deadline, in milliseconds. */
  readonly #deadlines = new Map<string, number>();

  constructor(pool: ConnectionPool, log: Logger, clock: Clock = systemClock) {
    this.#pool = pool;
    this.#log = log;
    this.#clock = clock;
  }

  /** Targets being drained. */
  get targets(): string[] {
    return [...this.#timers.keys()];
  }

  /** Milliseconds until the drain of `target` ends, or undefined when it is not draining. */
  remainingMs(target: string): number | undefined {
    const deadline = this.#deadlines.get(target);

    return deadline === undefined ? undefined : Math.max(0, deadline - this.#clock.now());
  }

  /** Starts draining a removed target; a target already draining keeps its first deadline. */
  drain(target: string, ids: string, timeoutMs: number): void {
    if (this.#timers.has(target)) {
      return;
    }

    const open = this.#pool.countTarget(target);
    this.#log.info("draining connections of removed target", { backend: ids, target, open, timeout: formatDuration(timeoutMs) });
    this.#startDeadline(target, timeoutMs, () => {
      const closed = this.#pool.closeTarget(target, "drain timeout of removed target");
      this.#log.info("drain of removed target ended; closed the connections still open", { backend: ids, target, closed });
    });
  }

  /**
   * Records a drain deadline for a removed target that has no connection in this thread, so
   * `remainingMs` can report the drain that other threads run. Nothing is logged or closed.
   */
  deadlineOnly(target: string, timeoutMs: number): void {
    if (!this.#timers.has(target)) {
      this.#startDeadline(target, timeoutMs, () => {});
    }
  }

  /** Stops draining a target that is back in the set; its connections stay open. */
  cancel(target: string): void {
    const timer = this.#timers.get(target);
    if (timer === undefined) {
      return;
    }

    timer.cancel();
    this.#timers.delete(target);
    this.#deadlines.delete(target);
    const open = this.#pool.countTarget(target);
    if (open > 0) {
      this.#log.info("removed target is back in the backend set; its connections stay open", { target, open });
    }
  }

  /** Records the target's deadline and runs `atDeadline` once it passes, after forgetting the deadline. */
  #startDeadline(target: string, timeoutMs: number, atDeadline: () => void): void {
    const timer = this.#clock.setTimeout(() => {
      this.#timers.delete(target);
      this.#deadlines.delete(target);
      atDeadline();
    }, timeoutMs);
    this.#timers.set(target, timer);
    this.#deadlines.set(target, this.#clock.now() + timeoutMs);
  }

  /** Cancels every deadline, for shutdown; the caller closes the connections. */
  clear(): void {
    for (const timer of this.#timers.values()) {
      timer.cancel();
    }
    this.#timers.clear();
    this.#deadlines.clear();
  }
}
