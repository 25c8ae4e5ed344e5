/**
 * Open connections and dials in flight per backend id, in one thread. An id counted here
 * keeps its traffic counters even after it left the set (see CounterRetention).
 *
 * One map update per dial and per connection; an id leaves the map when its count is 0.
 */
export class BackendIdsInUse {
  readonly #counts = new Map<string, number>();

  /** Counts one more open connection or dial in flight of `id`. */
  add(id: string): void {
    this.#counts.set(id, (this.#counts.get(id) ?? 0) + 1);
  }

  /**
   * Counts one open connection or dial in flight of `id` less.
   *
   * @throws {Error} "invariant violated" when `id` has none counted.
   */
  delete(id: string): void {
    const count = this.#counts.get(id);
    if (count === undefined) {
      throw new Error(`invariant violated: backend "${id}" has no open connection or dial in flight to release`);
    }

    if (count === 1) {
      this.#counts.delete(id);
    } else {
      this.#counts.set(id, count - 1);
    }
  }

  /** Returns true while `id` has an open connection or a dial in flight. */
  has(id: string): boolean {
    return this.#counts.has(id);
  }

  /** Ids with at least one open connection or dial in flight. */
  ids(): string[] {
    return [...this.#counts.keys()];
  }
}
