import { countOpenDescriptors, descriptorReserve, readDescriptorLimit } from "./descriptor-budget.ts";
import type { LogFields, Logger } from "./logger.ts";
import { RateLimitedLog } from "./rate-limited-log.ts";

/** The reason given for a dial or probe that failed for lack of a file descriptor. */
export const DESCRIPTOR_SHORTAGE = "too many open files (EMFILE)";

/**
 * Error codes of a connect that may have failed for lack of a descriptor. When socket(2) fails
 * with EMFILE, Bun 1.4.4 reports ECONNREFUSED (errno -111, "Failed to connect") to
 * `Bun.connect` and node:net alike, checked under `ulimit -n 40` with every descriptor held.
 * EMFILE and ENFILE are listed for a runtime that reports them as they are.
 */
const SHORTAGE_CODES = new Set(["ECONNREFUSED", "ConnectionRefused", "EMFILE", "ENFILE"]);

/** Milliseconds for which an exact count that left plenty of descriptors free is trusted without counting again. */
const COUNT_FRESH_MS = 100;

/** Milliseconds between two lines about the shortage. */
const LOG_INTERVAL_MS = 10_000;

/**
 * Tells a connect that failed because this process is out of file descriptors from one that
 * the backend refused, so that a local shortage does not mark healthy backends unhealthy.
 *
 * A connect failing with ECONNREFUSED or EMFILE counts as a shortage while fewer than twice
 * the descriptor guard's reserve are free (see `DescriptorBudget`), which is also when the
 * guard would not yet accept clients again. The cheap check comes first: an exact count of
 * `/proc/self/fd` less than 100 ms old that left at least four times the reserve free settles
 * it without counting again. A count that fails is taken as a shortage, because opening
 * `/proc/self/fd` fails with EMFILE too at the limit.
 *
 * NOTE: a backend that really refuses connects while the process is this close to its limit
 * is not counted as failing either. A shortage that starts within 100 ms of a count that left
 * plenty free is still counted against the backend.
 */
export class DescriptorShortage {
  readonly limit: number | undefined;
  readonly #reserve: number;
  readonly #count: () => number | undefined;
  readonly #now: () => number;
  readonly #log: RateLimitedLog;
  #countedAt = -Infinity;
  #free = Infinity;

  /**
   * @param log receives a warning, at most once per 10 s, when a shortage is found.
   * @param limit the descriptor limit (RLIMIT_NOFILE); undefined turns the check off.
   * @param count returns the exact number of open descriptors.
   * @param now returns the time in milliseconds.
   */
  constructor(log: Logger, limit = readDescriptorLimit(), count: () => number | undefined = countOpenDescriptors, now: () => number = () => performance.now()) {
    this.limit = limit;
    this.#reserve = limit === undefined ? 0 : descriptorReserve(limit);
    this.#count = count;
    this.#now = now;
    this.#log = new RateLimitedLog(log, "warn", LOG_INTERVAL_MS, now);
  }

  /**
   * Returns true when a connect that failed with `error` failed for lack of a descriptor, and
   * logs the shortage then, naming the limit and the fix. `fields` name the backend and target.
   */
  explains(error: unknown, fields: LogFields): boolean {
    const code = errnoCode(error);
    if (this.limit === undefined || typeof code !== "string" || !SHORTAGE_CODES.has(code)) {
      return false;
    }
    const now = this.#now();
    if (now - this.#countedAt < COUNT_FRESH_MS && this.#free >= 4 * this.#reserve) {
      return false;
    }

    this.#countedAt = now;
    const open = this.#count();
    this.#free = open === undefined ? 0 : this.limit - open;
    if (this.#free >= 2 * this.#reserve) {
      return false;
    }

    this.#log.log(`${DESCRIPTOR_SHORTAGE}: a connect failed for lack of a file descriptor, not because of the backend, so its health is unchanged; raise ulimit -n (LimitNOFILE= under systemd)`, {
      ...fields,
      descriptorLimit: this.limit,
      open: open ?? this.limit,
    });

    return true;
  }
}

/** Returns the errno code of `error`, or of its cause where a probe wrapped the connect error. */
function errnoCode(error: unknown): unknown {
  const code = (error as { code?: unknown } | undefined)?.code;

  return code ?? (error instanceof Error ? (error.cause as { code?: unknown } | undefined)?.code : undefined);
}
