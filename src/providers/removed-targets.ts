import type { Backend } from "../backend.ts";

/**
 * Default of `windowMs`: milliseconds after a removal within which a broken request counts as
 * closed by tinylb itself.
 */
export const REMOVAL_CUT_WINDOW_MS = 1000;

/**
 * The targets that a provider's last published set removed, and when. A provider whose
 * requests go through tinylb's own listener uses it to tell a request that tinylb closed,
 * because its API server left the set, from a failure of the API.
 */
export class RemovedTargets {
  /** Targets of the last set noted. */
  #targets = new Set<string>();
  #lastRemoval: { atMs: number; targets: string[] } | undefined;

  constructor(private readonly windowMs = REMOVAL_CUT_WINDOW_MS) {}

  /** Records the backends of a published set, and the targets it removed from the last one. */
  note(backends: Backend[]): void {
    const targets = new Set(backends.map((backend) => backend.target));
    const removed = [...this.#targets].filter((target) => !targets.has(target));
    this.#targets = targets;
    if (removed.length > 0) {
      this.#lastRemoval = { atMs: performance.now(), targets: removed };
    }
  }

  /** Returns the targets of a removal within the last `windowMs`, once per removal, or undefined. */
  takeRecent(): string[] | undefined {
    const removal = this.#lastRemoval;
    this.#lastRemoval = undefined;
    if (removal === undefined || performance.now() - removal.atMs > this.windowMs) {
      return undefined;
    }

    return removal.targets;
  }
}
