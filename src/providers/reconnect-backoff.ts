/** Settings of a reconnect backoff. */
export interface BackoffOptions {
  /**
   * Delay after the first failure, in milliseconds.
   * @default 500
   */
  initialMs?: number;
  /**
   * Largest delay, in milliseconds.
   * @default 30000
   */
  maxMs?: number;
  /** @default Math.random */
  random?: () => number;
}

/**
 * Exponential backoff with jitter for watches that reconnect. Each failure doubles the
 * base delay up to the maximum. The delay waited is a random value between half the base
 * and the base, so that many balancers do not reconnect in step.
 */
export class ReconnectBackoff {
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #random: () => number;
  #failures = 0;

  constructor(options: BackoffOptions = {}) {
    this.#initialMs = options.initialMs ?? 500;
    this.#maxMs = options.maxMs ?? 30_000;
    this.#random = options.random ?? Math.random;
  }

  /** Failures since the last reset. */
  get failures(): number {
    return this.#failures;
  }

  /** Counts a failure and returns the milliseconds to wait before the next attempt. */
  nextDelayMs(): number {
    const base = Math.min(this.#maxMs, this.#initialMs * 2 ** Math.min(this.#failures, 30));
    this.#failures++;

    return Math.round(base / 2 + (this.#random() * base) / 2);
  }

  /** Starts over after a success. */
  reset(): void {
    this.#failures = 0;
  }
}

/** Resolves after `ms` milliseconds, or at once when `signal` aborts. It never rejects. */
export function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) {
    return Promise.resolve();
  }

  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
