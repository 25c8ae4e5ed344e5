/**
 * Default milliseconds a watch must stay open, without an event, before it counts as a
 * success: long enough that a watch the server breaks at once, or one that streams an
 * oversized event, keeps its failure streak and back-off.
 */
export const STABLE_WATCH_MS = 10_000;

/**
 * Decides when an open watch proves that its source works, which ends the failure streak
 * and resets the back-off. That is its first change event, or `stableMs` open without an
 * error. A bookmark or progress notification is not enough, since a server or proxy that
 * ends each watch right after one would otherwise make the caller re-watch in a tight loop.
 * A list or range followed by a watch that ends before either therefore counts as one more
 * failure, not as a recovery.
 */
export class WatchSuccess {
  #timer: Timer | undefined;
  #reported = false;

  /** Starts the timer; call it once the watch's response has arrived. */
  constructor(
    stableMs: number,
    private readonly onSuccess: () => void,
  ) {
    this.#timer = setTimeout(() => this.#report(), stableMs);
  }

  /** True once the watch has proven itself. */
  get proven(): boolean {
    return this.#reported;
  }

  /** Reports the success at the watch's first change event; call it for no other event. */
  changeReceived(): void {
    this.#report();
  }

  /** Stops the timer when the watch ends. */
  dispose(): void {
    clearTimeout(this.#timer);
  }

  #report(): void {
    clearTimeout(this.#timer);
    if (!this.#reported) {
      this.#reported = true;
      this.onSuccess();
    }
  }
}
