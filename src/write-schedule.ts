import { ReconnectBackoff } from "./providers/reconnect-backoff.ts";

/** A write that returns false when it failed and should be tried again. */
export type Write = () => boolean;

/**
 * Decides when a write of the state file runs: at once, held back so that at most one runs
 * per `minIntervalMs`, or again after a back-off when it failed. Only the latest write is
 * kept, so a newer set replaces both a held-back and a failed one.
 */
export class WriteSchedule {
  readonly #minIntervalMs: number;
  readonly #backoff: ReconnectBackoff;
  readonly #onRetry: (delayMs: number) => void;
  #lastRun = -Infinity;
  #pending: Write | undefined;
  #timer: Timer | undefined;
  #closed = false;

  /**
   * @param minIntervalMs minimum milliseconds between two writes by `runSoon`
   * @param backoff delays before each retry of a failed write; reset by a write that succeeds
   * @param onRetry called with the delay of each retry scheduled
   */
  constructor(minIntervalMs: number, backoff: ReconnectBackoff, onRetry: (delayMs: number) => void = () => {}) {
    this.#minIntervalMs = minIntervalMs;
    this.#backoff = backoff;
    this.#onRetry = onRetry;
  }

  /**
   * Runs `write` now. While it fails, it runs again after each back-off delay, until a newer
   * write replaces it or the schedule is closed.
   */
  runNow(write: Write): void {
    this.#cancel();
    this.#lastRun = performance.now();
    if (write()) {
      this.#backoff.reset();

      return;
    }
    if (this.#closed) {
      return;
    }

    const delayMs = this.#backoff.nextDelayMs();
    this.#pending = write;
    this.#timer = setTimeout(() => this.flush(), delayMs);
    this.#onRetry(delayMs);
  }

  /**
   * Runs `write` now, or when `minIntervalMs` has passed since the last run. While a retry
   * is scheduled, `write` replaces the failed write and runs at the retry's time. Once the
   * schedule is closed, `write` runs at once, as with `runNow`, so nothing is scheduled.
   */
  runSoon(write: Write): void {
    const wait = this.#lastRun + this.#minIntervalMs - performance.now();
    if (wait <= 0 || this.#closed) {
      this.runNow(write);

      return;
    }

    this.#pending = write;
    this.#timer ??= setTimeout(() => this.flush(), wait);
  }

  /** Runs a held-back or failed write at once, if any. */
  flush(): void {
    const pending = this.#pending;
    this.#cancel();
    if (pending !== undefined) {
      this.runNow(pending);
    }
  }

  /** Runs a held-back or failed write one last time, and schedules nothing from then on. */
  close(): void {
    this.#closed = true;
    this.flush();
  }

  #cancel(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pending = undefined;
  }
}
