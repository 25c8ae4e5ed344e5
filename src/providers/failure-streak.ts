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
  readonly #causes = new NewCauses();

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
    if (this.#causes.add(fields.err ?? msg)) {
      this.log.warn(msg, this.#count === 1 ? fields : { ...fields, failures: this.#count });
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
    this.#causes.clear();
  }
}

/**
 * The causes one failure streak has warned about, so that each new cause warns once, up to
 * MAX_WARNED_CAUSES of them. Causes are compared by {@link failureCause}.
 */
export class NewCauses {
  readonly #seen = new Set<string>();

  /** Records the cause of `error`; returns true when it is new and still within the cap. */
  add(error: unknown): boolean {
    const cause = failureCause(error);
    if (this.#seen.has(cause) || this.#seen.size >= MAX_WARNED_CAUSES) {
      return false;
    }
    this.#seen.add(cause);

    return true;
  }

  /** Forgets every cause, when the streak ends. */
  clear(): void {
    this.#seen.clear();
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
