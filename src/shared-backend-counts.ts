import { decrementAboveZero, incrementBelow } from "./atomic-counts.ts";

/** Backend targets that can have a shared count at once. */
export const BACKEND_SLOTS = 65_536;

/**
 * Connections open or dialing per backend target, counted in shared memory by every relay
 * thread (`--workers`), so that `--max-connections-per-backend` applies to all threads
 * together and leastconn compares the connections of all threads.
 *
 * Each target has a slot: one Int32 in the counters' SharedArrayBuffer. The main thread
 * assigns slots when a backend set is applied and sends them to the workers with that set, so
 * every thread uses the same slot for a target. A full table reuses the slots of targets that
 * left the set and have no open connection. A target still without a slot (a set of more than
 * BACKEND_SLOTS targets) has no shared count, so the caller counts it in its own thread.
 *
 * NOTE: a worker that has not yet received the set that freed a slot may still reserve it for
 * the old target. The count of the target that took the slot over is then one too high until
 * that connection closes. This needs more than BACKEND_SLOTS targets over the process's life.
 */
export class SharedBackendCounts {
  readonly #counts: Int32Array;
  readonly #slots = new Map<string, number>();
  /** True in the main thread, which assigns the slots; workers learn them from its messages. */
  readonly #assigns: boolean;
  /** Slots below this index have been handed out at least once. */
  #firstUnused = 0;
  /** Slots handed out before and freed since. */
  readonly #free: number[] = [];

  /** @param counts the slots' memory, one Int32 per slot. */
  constructor(counts: Int32Array, assigns: boolean) {
    this.#counts = counts;
    this.#assigns = assigns;
  }

  /** Returns the slot of a backend target, or undefined when it has none. */
  slotOf(target: string): number | undefined {
    return this.#slots.get(target);
  }

  /**
   * Gives every target of a new set a slot, in the main thread; does nothing in a worker.
   * Returns the slots of the set's targets, for the message that sends the set to the workers.
   */
  assign(targets: ReadonlySet<string>): Record<string, number> {
    if (this.#assigns) {
      let reclaimed = false;
      for (const target of targets) {
        if (this.#slots.has(target)) {
          continue;
        }
        if (this.#free.length === 0 && this.#firstUnused === this.#counts.length && !reclaimed) {
          this.#reclaim(targets);
          reclaimed = true;
        }
        const slot = this.#free.pop() ?? (this.#firstUnused < this.#counts.length ? this.#firstUnused++ : undefined);
        if (slot === undefined) {
          break;
        }
        this.#slots.set(target, slot);
      }
    }

    return this.slotsOf(targets);
  }

  /** Returns the slots of the targets that have one. */
  slotsOf(targets: Iterable<string>): Record<string, number> {
    const slots: Record<string, number> = {};
    for (const target of targets) {
      const slot = this.#slots.get(target);
      if (slot !== undefined) {
        slots[target] = slot;
      }
    }

    return slots;
  }

  /** Records the slots the main thread assigned, in a worker, before it applies their set. */
  learn(slots: Record<string, number>): void {
    for (const [target, slot] of Object.entries(slots)) {
      this.#slots.set(target, slot);
    }
  }

  /** Returns the connections open or dialing to the slot's target in every thread. */
  count(slot: number): number {
    return Atomics.load(this.#counts, slot);
  }

  /** Counts one more connection to the slot's target, unless `cap` are already open or dialing; returns false then. */
  tryReserve(slot: number, cap: number): boolean {
    return incrementBelow(this.#counts, slot, cap);
  }

  /** Gives back a connection counted by `tryReserve`; returns false, counting nothing, when the slot's count is 0. */
  release(slot: number): boolean {
    return decrementAboveZero(this.#counts, slot);
  }

  /** Frees the slots of targets outside `keep` that no thread counts a connection for. */
  #reclaim(keep: ReadonlySet<string>): void {
    for (const [target, slot] of this.#slots) {
      if (!keep.has(target) && Atomics.load(this.#counts, slot) === 0) {
        this.#slots.delete(target);
        this.#free.push(slot);
      }
    }
  }
}
