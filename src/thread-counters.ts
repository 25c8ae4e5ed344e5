import { incrementBelow } from "./atomic-counts.ts";
import { BACKEND_SLOTS, SharedBackendCounts } from "./shared-backend-counts.ts";

/** Index of the rotation's turn counter in the shared array. */
const TURN = 0;
/** Index of the count of connections open or dialing in every thread. */
const OPEN = 1;
/** Index of the first per-backend count (see SharedBackendCounts). */
const BACKEND_COUNTS = 2;

/**
 * Counters that every relay thread of one balancer (`--workers`) updates in shared memory,
 * so that the threads act as one balancer. They hold one rotation over the backends, and one
 * count of the connections open or dialing for the global cap and the descriptor guard.
 *
 * For the per-backend cap and leastconn they also count the connections of each backend
 * target (`backendCounts`).
 *
 * The main thread creates the counters and passes `buffer` to each relay worker in its start
 * message; a SharedArrayBuffer is shared, not copied, by `postMessage`. Each update is one
 * atomic operation, so no thread waits for another.
 */
export class ThreadCounters {
  readonly buffer: SharedArrayBuffer;
  /** Per-backend counts, when the counters were created with them. */
  readonly backendCounts: SharedBackendCounts | undefined;
  readonly #slots: Int32Array;

  /**
   * @param buffer the main thread's counters, in a relay worker; the main thread leaves it out
   *   and creates them.
   * @param withBackendCounts true to make room for per-backend counts, when the main thread
   *   creates the counters.
   */
  constructor(buffer?: SharedArrayBuffer, withBackendCounts = false) {
    const assigns = buffer === undefined;
    this.buffer = buffer ?? new SharedArrayBuffer((BACKEND_COUNTS + (withBackendCounts ? BACKEND_SLOTS : 0)) * Int32Array.BYTES_PER_ELEMENT);
    this.#slots = new Int32Array(this.buffer);
    const counts = this.#slots.subarray(BACKEND_COUNTS);
    this.backendCounts = counts.length > 0 ? new SharedBackendCounts(counts, assigns) : undefined;
  }

  /**
   * Takes `count` turns of the shared rotation and returns the first one. Consecutive turns
   * over all threads are consecutive numbers, so any `n` of them in a row reach every position
   * of an `n`-backend set once.
   */
  takeTurns(count = 1): number {
    // Atomics.add returns a signed 32-bit value, so >>> 0 keeps the turn positive. Positions
    // then stay in order except once every 2^32 turns, where the counter wraps.
    return Atomics.add(this.#slots, TURN, count) >>> 0;
  }

  /**
   * Gives back one turn of `takeTurns`. When other threads took turns in between, one of them
   * may get the same position as a later pick of this thread, once.
   */
  returnTurn(): void {
    Atomics.sub(this.#slots, TURN, 1);
  }

  /** Connections open or dialing in every thread. */
  get open(): number {
    return Atomics.load(this.#slots, OPEN);
  }

  /**
   * Counts one more connection, unless `cap` connections are already open or dialing in all
   * threads together; 0 means no cap. Returns false when the cap is reached.
   */
  tryOpen(cap: number): boolean {
    return incrementBelow(this.#slots, OPEN, cap);
  }

  /** Counts a connection counted by `tryOpen` as closed. */
  closed(): void {
    Atomics.sub(this.#slots, OPEN, 1);
  }
}
