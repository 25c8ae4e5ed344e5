import type { BackendSet } from "../backend-set.ts";
import type { LogFields, Logger } from "../logger.ts";
import type { PublishBackendSet } from "./provider.ts";

/**
 * Guards what a watching provider publishes: a set that did not change is not published
 * again, and an empty set is never published, because a source that lists no usable
 * backend is treated as failing. Only the first empty result of a streak is logged.
 */
export class SetPublisher {
  #published: BackendSet | undefined;
  #emptyWarned = false;

  /**
   * @param log the provider's logger.
   * @param emptyMessage the warning for an empty result, naming where the provider found nothing.
   */
  constructor(
    private readonly log: Logger,
    private readonly emptyMessage: string,
  ) {}

  /** Publishes `set` unless it is empty or equal to the last set published; `fields` go on the empty warning. */
  offer(set: BackendSet, publish: PublishBackendSet, fields: LogFields = {}): void {
    if (set.size === 0) {
      if (!this.#emptyWarned) {
        this.log.warn(this.emptyMessage, fields);
        this.#emptyWarned = true;
      }

      return;
    }

    this.#emptyWarned = false;
    if (this.#published?.equals(set) === true) {
      return;
    }
    this.#published = set;
    publish(set);
  }
}
