import type { Logger, LogLevel } from "./logger.ts";

/**
 * Lines that a group of rate-limited logs may write together per interval, such as the dial
 * failure lines of every backend id. Each id is limited on its own, so without a budget a
 * client that fails over 10,000 dead backends writes 10,000 lines at once.
 */
export class LogBudget {
  readonly #logger: Logger;
  readonly #level: LogLevel;
  readonly #lines: number;
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #message: string;
  #windowStart = -Infinity;
  #used = 0;
  #spentLogged = false;

  /**
   * @param lines lines the group may write per interval.
   * @param message the line written once per interval when the budget runs out.
   */
  constructor(logger: Logger, level: LogLevel, lines: number, intervalMs: number, message: string, now: () => number = () => performance.now()) {
    this.#logger = logger;
    this.#level = level;
    this.#lines = lines;
    this.#intervalMs = intervalMs;
    this.#message = message;
    this.#now = now;
  }

  /** Takes one line from the budget. Returns false when it is spent, and logs that once per interval. */
  take(): boolean {
    const now = this.#now();
    if (now - this.#windowStart >= this.#intervalMs) {
      this.#windowStart = now;
      this.#used = 0;
      this.#spentLogged = false;
    }
    if (this.#used < this.#lines) {
      this.#used++;

      return true;
    }
    if (!this.#spentLogged) {
      this.#spentLogged = true;
      this.#logger.log(this.#level, this.#message, { lines: this.#lines, intervalMs: this.#intervalMs });
    }

    return false;
  }
}
