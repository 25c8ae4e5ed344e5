import type { Backend } from "./backend.ts";
import type { BackendSet } from "./backend-set.ts";
import type { Clock } from "./clock.ts";
import type { ConnectionPool } from "./connection-pool.ts";
import type { HealthChecker, UnhealthyPolicy } from "./health-checker.ts";
import type { Logger } from "./logger.ts";
import { type RemovalPolicy, TargetDrains } from "./target-drain.ts";

/** The server options that decide what happens to the open connections of a removed or unhealthy backend. */
export interface RemovalPolicyOptions {
  /** Open connections of a target that leaves the set: `close` them at once, or `drain` them until `drainTimeoutMs`. */
  onRemoval: RemovalPolicy;
  /** Milliseconds a removed target's connections may take to finish under the `drain` policy. */
  drainTimeoutMs: number;
  /** Open connections of a backend that turns unhealthy: `keep` them, or `close` them unless every enabled backend is unhealthy. */
  onUnhealthy: UnhealthyPolicy;
  /**
   * Relay threads (`--workers`). With more than one, the main thread keeps a drain deadline
   * for every removed target, also one whose connections are all in other threads, so the
   * status can show when their drain ends.
   */
  threads?: number;
  /** This thread among `threads`: 0 for the main thread, which alone serves the status. */
  threadIndex?: number;
}

/**
 * The `onRemoval` and `onUnhealthy` policies, applied to the open connections of a target
 * that left the backend set or of a backend whose health flipped to unhealthy. Connections
 * to targets that stay in the set are closed only by the `onUnhealthy` policy.
 */
export class RemovalPolicies {
  readonly #pool: ConnectionPool;
  readonly #health: HealthChecker;
  readonly #log: Logger;
  readonly #options: RemovalPolicyOptions;
  readonly #drains: TargetDrains;

  /**
   * @param log the server's logger.
   * @param clock the time source of drain deadlines.
   * @param options read on every change, so the server may pass its own options object.
   */
  constructor(pool: ConnectionPool, health: HealthChecker, log: Logger, clock: Clock, options: RemovalPolicyOptions) {
    this.#pool = pool;
    this.#health = health;
    this.#log = log;
    this.#options = options;
    this.#drains = new TargetDrains(pool, log, clock);
  }

  /**
   * Applies the `onRemoval` policy once `set` replaced `previous` in the rotation. A draining
   * target that is back in the set keeps its connections. The connections of every target
   * that left are closed, or drained under the `drain` policy.
   */
  setReplaced(previous: BackendSet, set: BackendSet): void {
    for (const target of this.#drains.targets) {
      if (set.hasTarget(target)) {
        this.#drains.cancel(target);
      }
    }
    for (const target of this.#pool.targets()) {
      if (!set.hasTarget(target)) {
        this.#closeTarget(target, previous);
      }
    }
    const mainOfSeveral = (this.#options.threads ?? 1) > 1 && (this.#options.threadIndex ?? 0) === 0;
    if (this.#options.onRemoval === "drain" && mainOfSeveral) {
      for (const target of previous.targets) {
        if (!set.hasTarget(target)) {
          this.#drains.deadlineOnly(target, this.#options.drainTimeoutMs);
        }
      }
    }
  }

  /** Milliseconds until the drain of a removed `target` ends, or undefined when it is not draining. */
  drainRemainingMs(target: string): number | undefined {
    return this.#drains.remainingMs(target);
  }

  /** Cancels every drain deadline, for shutdown. The caller closes the connections. */
  cancelDrains(): void {
    this.#drains.clear();
  }

  #closeTarget(target: string, previous: BackendSet): void {
    const ids = previous.backends.filter((backend) => backend.target === target).map((backend) => backend.id);
    if (this.#options.onRemoval === "drain") {
      this.#drains.drain(target, ids.join(","), this.#options.drainTimeoutMs);

      return;
    }
    const closed = this.#pool.closeTarget(target, "target left the backend set");
    this.#log.info("closed connections of removed target", { backend: ids.join(","), target, closed });
  }

  /**
   * Applies the `onUnhealthy` policy to a backend whose health just flipped. Returns true when
   * the policy closed the open connections of the backend's target, so that the caller gives up
   * the dials in flight to it too.
   */
  healthFlipped(backend: Backend, healthy: boolean): boolean {
    if (healthy || this.#options.onUnhealthy !== "close") {
      return false;
    }
    if (this.#health.degraded) {
      this.#log.info("kept connections of unhealthy backend because every enabled backend is unhealthy", { backend: backend.id, target: backend.target });

      return false;
    }

    const closed = this.#pool.closeTarget(backend.target, "backend turned unhealthy");
    // Each relay thread logs its own count, so a thread that had none of them logs at debug only.
    this.#log.log(closed > 0 ? "info" : "debug", "closed connections of unhealthy backend", { backend: backend.id, target: backend.target, closed });

    return true;
  }
}
