import type { LogFields, Logger } from "../logger.ts";
import type { ProviderHealth } from "./provider-health.ts";

/**
 * Logging for a run of failures of one source: the first failure of a streak is a
 * warning, repeats are debug lines with a running count, and the first success after a
 * streak is an info line with the count. A source that stays down therefore writes one
 * warning, not one per retry. `health`, when given, records every failure and success too.
 */
export class FailureStreak {
  #count = 0;

  constructor(
    private readonly log: Logger,
    private readonly health?: ProviderHealth,
  ) {}

  /** Failures since the last success. */
  get count(): number {
    return this.#count;
  }

  /** Logs a failure the caller handled, with the error and the retry delay. */
  failed(msg: string, fields: LogFields): void {
    this.#count++;
    this.health?.failed(fields.err ?? msg);
    if (this.#count === 1) {
      this.log.warn(msg, fields);
    } else {
      this.log.debug(msg, { ...fields, failures: this.#count });
    }
  }

  /** Ends the streak and logs the recovery when there was one. */
  succeeded(msg: string, fields?: LogFields): void {
    this.health?.succeeded();
    if (this.#count > 0) {
      this.log.info(msg, { ...fields, failures: this.#count });
    }
    this.#count = 0;
  }
}
