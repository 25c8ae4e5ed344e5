import { type Backend } from "./backend.ts";
import { BackendSet, compareIds } from "./backend-set.ts";

/**
 * Hands out the backends of a set in id order, wrapping around.
 *
 * The selector remembers the id it handed out last, not a position, so replacing the
 * set keeps its place: the next pick is the first backend whose id sorts after the
 * last one. Every backend of a new set is therefore reached within one cycle.
 */
export class RoundRobinSelector {
  #set: BackendSet;
  #next = 0;
  #lastId: string | undefined;

  constructor(set: BackendSet = BackendSet.EMPTY) {
    this.#set = set;
  }

  /** The set the selector currently rotates over. */
  get set(): BackendSet {
    return this.#set;
  }

  /** Replaces the set, keeping the place in the rotation. */
  update(set: BackendSet): void {
    this.#set = set;
    this.#next = this.#lastId === undefined ? 0 : this.#indexAfter(this.#lastId);
  }

  /**
   * Returns the next backend of the rotation, or `undefined` for an empty set.
   * With `accept`, backends it rejects are passed over, for at most one cycle.
   */
  next(accept?: (backend: Backend) => boolean): Backend | undefined {
    const backends = this.#set.backends;
    for (let step = 0; step < backends.length; step++) {
      const index = (this.#next + step) % backends.length;
      const backend = backends[index]!;
      if (accept === undefined || accept(backend)) {
        this.#next = (index + 1) % backends.length;
        this.#lastId = backend.id;

        return backend;
      }
    }

    return undefined;
  }

  /**
   * Returns the first backend after `id` in the current set's order, wrapping around,
   * that `accept` takes, without moving the rotation. Used to fail over within one
   * client connection while other clients keep the shared rotation.
   */
  following(id: string, accept: (backend: Backend) => boolean): Backend | undefined {
    const backends = this.#set.backends;
    const start = this.#indexAfter(id);
    for (let step = 0; step < backends.length; step++) {
      const backend = backends[(start + step) % backends.length]!;
      if (accept(backend)) {
        return backend;
      }
    }

    return undefined;
  }

  /** Index of the first backend whose id sorts after `id`, or 0 when none does. */
  #indexAfter(id: string): number {
    const backends = this.#set.backends;
    let low = 0;
    let high = backends.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (compareIds(backends[middle]!.id, id) <= 0) {
        low = middle + 1;
      } else {
        high = middle;
      }
    }

    return low === backends.length ? 0 : low;
  }
}
