import { type SlotAccess, SlotList } from "./slot-list.ts";

/** The part of a dial that ConnectDeadlines reads and calls. */
export interface TimedDial {
  /** `performance.now()` milliseconds at which the connect is given up. */
  readonly deadline: number;
  /** True until the dial succeeds, fails or times out. */
  readonly pending: boolean;
  /** Index in the list of ConnectDeadlines, or -1. Only ConnectDeadlines writes it. */
  deadlineSlot?: number;
  /** Gives the connect up; called once, at or after the deadline, while still pending. */
  timedOut(): void;
}

const DEADLINE_SLOT: SlotAccess<TimedDial> = {
  get: (dial) => dial.deadlineSlot ?? -1,
  set: (dial, slot) => {
    dial.deadlineSlot = slot;
  },
};

/** Dials kept before the list is cleared of settled ones, at the least. */
const MIN_COMPACT_LENGTH = 64;

/**
 * The connect deadlines of one connector's dials in flight, watched by one timer rather than
 * one timer per dial. In a CPU profile of short connections, Bun 1.4.4's `setTimeout` and
 * `clearTimeout` took about 1.5 µs per dial, more than the rest of the dial's JavaScript.
 *
 * The timer is armed for the earliest deadline of the dials still pending. A dial that settles
 * should leave the list with `delete`, so that the list does not keep its connection in
 * memory. Settled dials that were not deleted are dropped in batches, whenever the list has
 * grown to twice the length it had after the last clean-up.
 */
export class ConnectDeadlines<D extends TimedDial = TimedDial> {
  #dials = new SlotList<D>(DEADLINE_SLOT);
  #compactAt = MIN_COMPACT_LENGTH;
  #timer: Timer | undefined;
  #armedFor = Infinity;

  /** Watches a dial that has just started. */
  add(dial: D): void {
    if (this.#dials.size >= this.#compactAt) {
      for (const waiting of this.#dials.toArray()) {
        if (!waiting.pending) {
          this.#dials.delete(waiting);
        }
      }
      this.#compactAt = Math.max(MIN_COMPACT_LENGTH, 2 * this.#dials.size);
    }
    this.#dials.add(dial);
    this.#arm(dial.deadline);
  }

  /** Stops watching a dial that settled. The timer stays armed and finds nothing to time out. */
  delete(dial: D): void {
    this.#dials.delete(dial);
  }

  /** Returns the dials still pending, oldest first. */
  pending(): D[] {
    return this.#dials.toArray().filter((dial) => dial.pending);
  }

  /** Stops the timer and drops every dial, so a dial still pending then never times out. */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedFor = Infinity;
    this.#dials = new SlotList<D>(DEADLINE_SLOT);
  }

  #arm(deadline: number): void {
    if (deadline < this.#armedFor) {
      clearTimeout(this.#timer);
      this.#armedFor = deadline;
      this.#timer = setTimeout(() => this.#sweep(), Math.max(1, Math.ceil(deadline - performance.now())));
      this.#timer.unref();
    }
  }

  #sweep(): void {
    this.#timer = undefined;
    this.#armedFor = Infinity;
    const now = performance.now();
    const expired: D[] = [];
    for (const dial of this.#dials.toArray()) {
      if (!dial.pending || dial.deadline <= now) {
        this.#dials.delete(dial);
        if (dial.pending) {
          expired.push(dial);
        }
      } else {
        this.#arm(dial.deadline);
      }
    }
    this.#compactAt = Math.max(MIN_COMPACT_LENGTH, 2 * this.#dials.size);
    // Last, because a timed-out dial may start the next one of its failover plan.
    for (const dial of expired) {
      dial.timedOut();
    }
  }
}
