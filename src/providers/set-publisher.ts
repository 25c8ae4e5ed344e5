import type { BackendSet } from "../backend-set.ts";
import type { LogFields, Logger } from "../logger.ts";
import type { ProviderHealth } from "./provider-health.ts";
import type { PublishBackendSet } from "./provider.ts";

/**
 * Default maximum number of backends a network provider (Kubernetes, etcd) publishes: the
 * limit of a config file's `backends` list and of the admin API's sets.
 */
export const MAX_PROVIDER_BACKENDS = 10_000;

/** A provider result with more backends than the limit; the provider keeps its last set. */
export class TooManyBackendsError extends Error {
  override name = "TooManyBackendsError";
}

/**
 * Guards what a watching provider publishes: a set that did not change is not published
 * again, and an empty set is never published, so a source that lists no usable backend
 * leaves the last set in place. Only the first empty result of a run is logged, and
 * `health` shows the kept set until a result with backends arrives, which is logged at info
 * with how long the run lasted. A set larger than
 * `maxBackends` is rejected with an error, which the provider handles as a failed fetch.
 */
export class SetPublisher {
  #published: BackendSet | undefined;
  /** Clock time (milliseconds since the epoch) of the first empty result of the current run, or undefined. */
  #emptySinceMs: number | undefined;

  /**
   * @param log the provider's logger.
   * @param emptyReason names where the provider found nothing, such as `no valid backend
   *   under the etcd prefix`, for the warning and for `health`.
   * @param maxBackends the largest set published. @default MAX_PROVIDER_BACKENDS
   * @param health the provider's health, which records the kept set.
   */
  constructor(
    private readonly log: Logger,
    private readonly emptyReason: string,
    private readonly maxBackends = MAX_PROVIDER_BACKENDS,
    private readonly health?: ProviderHealth,
  ) {}

  /**
   * Publishes `set` unless it is empty or equal to the last set published. `fields` go on the
   * empty warning and the line that ends it, and `now` is the clock time in milliseconds since the epoch.
   *
   * @throws {TooManyBackendsError} when `set` has more than `maxBackends` backends; nothing is published.
   */
  offer(set: BackendSet, publish: PublishBackendSet, fields: LogFields = {}, now = Date.now()): void {
    if (set.size > this.maxBackends) {
      throw new TooManyBackendsError(`the new backend set has ${set.size} backends, more than the limit of ${this.maxBackends}`);
    }
    if (set.size === 0) {
      this.health?.keptLastSet(this.emptyReason, now);
      if (this.#emptySinceMs === undefined) {
        this.log.warn(`${this.emptyReason}; keeping the last backend set`, fields);
        this.#emptySinceMs = now;
      }

      return;
    }

    if (this.#emptySinceMs !== undefined) {
      this.log.info("usable backends listed again; the backend set is no longer stale", {
        ...fields,
        count: set.size,
        staleReason: this.emptyReason,
        staleForMs: now - this.#emptySinceMs,
      });
      this.#emptySinceMs = undefined;
    }
    this.health?.listedBackends();
    if (this.#published?.equals(set) === true) {
      return;
    }
    this.#published = set;
    publish(set);
  }
}
