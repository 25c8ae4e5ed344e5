import type { LogBudget } from "./log-budget.ts";
import type { LogFields, Logger, LogLevel } from "./logger.ts";

/**
 * A log line that repeats at most once per interval; the next line it writes carries
 * how many were suppressed in between.
 */
export class RateLimitedLog {
  #last = -Infinity;
  #suppressed = 0;

  /** @param budget lines this log shares with others of its group. A line it cannot take is suppressed. */
  constructor(
    private readonly logger: Logger,
    private readonly level: LogLevel,
    private readonly intervalMs: number,
    private readonly now: () => number = () => performance.now(),
    private readonly budget?: LogBudget,
  ) {}

  /** Writes the line unless one was written less than the interval ago or the budget is spent; returns false when it suppressed it. */
  log(msg: string, fields?: LogFields): boolean {
    const now = this.now();
    if (now - this.#last < this.intervalMs || (this.budget !== undefined && !this.budget.take())) {
      this.#suppressed++;

      return false;
    }

    const suppressed = this.#suppressed;
    this.#last = now;
    this.#suppressed = 0;
    this.logger.log(this.level, msg, suppressed > 0 ? { ...fields, suppressed } : fields);

    return true;
  }
}
