import { errorText, type LogFields, type Logger } from "../logger.ts";
import type { ProviderHealth } from "./provider-health.ts";

/** Distinct causes one streak warns about; past this, further new causes are debug lines. */
export const MAX_WARNED_CAUSES = 8;

/**
 * Logging for a run of failures of one source: the first failure of a streak is a
 * warning, and so is the first failure with a cause the streak has not had yet (a refused
 * connect that turns into a 401, say), with the running count. Repeats of a cause are debug
 * lines, and the first success after a streak is an info line with the count. A source that
 * stays down for one reason therefore writes one warning, not one per retry. `health`, when
 * given, records every failure and success too.
 */
export class FailureStreak {
  #count = 0;
  /** Causes this streak warned about, with digits masked (see {@link failureCause}). */
  readonly #warnedCauses = new Set<string>();

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
    const cause = failureCause(fields.err ?? msg);
    if (this.#warnedCauses.has(cause) || this.#warnedCauses.size >= MAX_WARNED_CAUSES) {
      this.log.debug(msg, { ...fields, failures: this.#count });
    } else {
      this.#warnedCauses.add(cause);
      this.log.warn(msg, this.#count === 1 ? fields : { ...fields, failures: this.#count });
    }
  }

  /** Ends the streak and logs the recovery when there was one. */
  succeeded(msg: string, fields?: LogFields): void {
    this.health?.succeeded();
    if (this.#count > 0) {
      this.log.info(msg, { ...fields, failures: this.#count });
    }
    this.#count = 0;
    this.#warnedCauses.clear();
  }
}

/**
 * Returns the kind of a failure: the error's text with every run of digits masked. A port or
 * a duration therefore does not make a repeat look new, while `connection refused` and
 * `401 Unauthorized` stay apart by their words.
 */
export function failureCause(error: unknown): string {
  return errorText(error).replace(/\d+/g, "#");
}
