import { type Backend } from "./backend.ts";
import { BackendSet, compareIds } from "./backend-set.ts";

/** A rotation position that several selectors share (see ThreadCounters). */
export interface SharedTurns {
  /** Takes `count` turns and returns the first one. */
  takeTurns(count?: number): number;
  /** Gives back one turn taken by a pick that handed out no backend. */
  returnTurn(): void;
}

/** Backend ids the rotation never hands out (see DisabledBackends). */
export interface DisabledIds {
  readonly size: number;
  has(id: string): boolean;
}

/** No disabled ids, for a rotation or checker that is given none. */
export const NONE_DISABLED: DisabledIds = { size: 0, has: () => false };

/**
 * Hands out the backends of a set in id order, wrapping around.
 *
 * The selector remembers the id it handed out last, not a position, so replacing the
 * set keeps its place: the next pick is the first backend whose id sorts after the
 * last one. Every backend of a new set is therefore reached within one cycle.
 *
 * With `turns`, the selectors of several threads share one rotation: each pick takes the
 * next turn, and the turn number modulo the set's size is the position. Consecutive turns
 * of all threads together then reach every backend of a set, a new one too, within one cycle.
 *
 * Disabled ids are passed over by `next` and `following` alike, as if `accept` rejected
 * them, so every enabled backend is still reached within one cycle after a disable or an
 * enable.
 */
export class RoundRobinSelector {
  #set: BackendSet;
  #next = 0;
  #lastId: string | undefined;
  readonly #turns: SharedTurns | undefined;
  readonly #disabled: DisabledIds;

  /** `disabled` is read on every pick, so changes to it apply to the next one. */
  constructor(set: BackendSet = BackendSet.EMPTY, turns?: SharedTurns, disabled: DisabledIds = NONE_DISABLED) {
    this.#set = set;
    this.#turns = turns;
    this.#disabled = disabled;
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
   * Returns the next enabled backend of the rotation, or `undefined` when the set has none.
   * With `accept`, backends it rejects are passed over too, for at most one cycle.
   */
  next(accept?: (backend: Backend) => boolean): Backend | undefined {
    const backends = this.#set.backends;
    if (backends.length === 0) {
      return undefined;
    }

    const start = this.#turns === undefined ? this.#next : this.#turns.takeTurns() % backends.length;
    for (let step = 0; step < backends.length; step++) {
      const index = (start + step) % backends.length;
      const backend = backends[index]!;
      if (this.#enabled(backend) && (accept === undefined || accept(backend))) {
        this.#next = (index + 1) % backends.length;
        this.#lastId = backend.id;
        if (step > 0) {
          // The skipped backends' turns go to this pick, so the next turn follows it rather
          // than landing on it again.
          this.#turns?.takeTurns(step);
        }

        return backend;
      }
    }

    // A pick that found nothing, such as the healthy pass of a degraded balancer, uses no turn.
    // Otherwise each client of a two-pass pick would take two turns, and with an even number of
    // backends the second passes would start at the same half of them.
    this.#turns?.returnTurn();

    return undefined;
  }

  /**
   * Returns the first enabled backend after `id` in the current set's order, wrapping
   * around, that `accept` takes, without moving the rotation. Used to fail over within one
   * client connection while other clients keep the shared rotation.
   */
  following(id: string, accept: (backend: Backend) => boolean): Backend | undefined {
    const backends = this.#set.backends;
    const start = this.#indexAfter(id);
    for (let step = 0; step < backends.length; step++) {
      const backend = backends[(start + step) % backends.length]!;
      if (this.#enabled(backend) && accept(backend)) {
        return backend;
      }
    }

    return undefined;
  }

  #enabled(backend: Backend): boolean {
    // Checking the size first costs nothing per pick while no backend is disabled.
    return this.#disabled.size === 0 || !this.#disabled.has(backend.id);
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
