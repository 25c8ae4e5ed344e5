/** The part of a dial that ConnectDeadlines reads and calls. */
export interface TimedDial {
  /** `performance.now()` milliseconds at which the connect is given up. */
  readonly deadline: number;
  /** True until the dial succeeds, fails or times out. */
  readonly pending: boolean;
  /** Gives the connect up; called once, at or after the deadline, while still pending. */
  timedOut(): void;
}

/** Dials kept before the list is cleared of settled ones, at the least. */
const MIN_COMPACT_LENGTH = 64;

/**
 * The connect deadlines of one connector's dials in flight, watched by one timer rather than
 * one timer per dial. In a CPU profile of short connections, Bun 1.4.4's `setTimeout` and
 * `clearTimeout` took about 1.5 µs per dial, more than the rest of the dial's JavaScript.
 *
 * The timer is armed for the earliest deadline of the dials still pending. Most dials settle
 * long before it fires, so they are dropped from the list in batches, whenever the list has
 * grown to twice the length it had after the last clean-up.
 */
export class ConnectDeadlines<D extends TimedDial = TimedDial> {
  #dials: D[] = [];
  #compactAt = MIN_COMPACT_LENGTH;
  #timer: Timer | undefined;
  #armedFor = Infinity;

  /** Watches a dial that has just started. */
  add(dial: D): void {
    if (this.#dials.length >= this.#compactAt) {
      this.#dials = this.#dials.filter((waiting) => waiting.pending);
      this.#compactAt = Math.max(MIN_COMPACT_LENGTH, 2 * this.#dials.length);
    }
    this.#keep(dial);
  }

  /** Returns the dials still pending, oldest first. */
  pending(): D[] {
    return this.#dials.filter((dial) => dial.pending);
  }

  /** Stops the timer and drops every dial, so a dial still pending then never times out. */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedFor = Infinity;
    this.#dials = [];
  }

  #keep(dial: D): void {
    this.#dials.push(dial);
    if (dial.deadline < this.#armedFor) {
      clearTimeout(this.#timer);
      this.#armedFor = dial.deadline;
      this.#timer = setTimeout(() => this.#sweep(), Math.max(1, Math.ceil(dial.deadline - performance.now())));
      this.#timer.unref();
    }
  }

  #sweep(): void {
    this.#timer = undefined;
    this.#armedFor = Infinity;
    const dials = this.#dials;
    this.#dials = [];
    const now = performance.now();
    const expired: D[] = [];
    for (const dial of dials) {
      if (!dial.pending) {
        continue;
      }
      if (dial.deadline <= now) {
        expired.push(dial);
      } else {
        this.#keep(dial);
      }
    }
    this.#compactAt = Math.max(MIN_COMPACT_LENGTH, 2 * this.#dials.length);
    // Last, because a timed-out dial may start the next one of its failover plan.
    for (const dial of expired) {
      dial.timedOut();
    }
  }
}
