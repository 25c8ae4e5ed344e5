/**
 * Adds one to `counts[index]` unless it has reached `cap` (0 means no cap). Other threads
 * may update the same shared array, so the check and the addition are one atomic step.
 * Returns false, adding nothing, when the count is at the cap.
 */
export function incrementBelow(counts: Int32Array, index: number, cap: number): boolean {
  for (;;) {
    const count = Atomics.load(counts, index);
    if (cap > 0 && count >= cap) {
      return false;
    }
    if (Atomics.compareExchange(counts, index, count, count + 1) === count) {
      return true;
    }
  }
}

/**
 * Subtracts one from `counts[index]` unless it is 0, as one atomic step. Returns false,
 * subtracting nothing, when the count is 0.
 */
export function decrementAboveZero(counts: Int32Array, index: number): boolean {
  for (;;) {
    const count = Atomics.load(counts, index);
    if (count <= 0) {
      return false;
    }
    if (Atomics.compareExchange(counts, index, count, count - 1) === count) {
      return true;
    }
  }
}
