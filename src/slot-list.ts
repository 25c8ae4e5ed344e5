/** Reads and writes an item's index in one SlotList, which is -1 while the item is not in it. */
export interface SlotAccess<T> {
  get(item: T): number;
  set(item: T, slot: number): void;
}

/** Holes a list may have beyond its live items before `add` compacts it. */
const MIN_HOLES = 16;

/**
 * A list in insertion order whose items record their own index (slot), so that `delete` is
 * one array store and no hash lookup.
 *
 * The point is garbage collection, not lookup speed. In Bun 1.4.4, a Map or Set that survived
 * a collection while it had entries keeps every key and value added since then alive through
 * the next young collection, deleted or not. Counted with `heapStats()` from `bun:jsc`, such a
 * Set kept 32 entries, while 10,000 objects were added and each deleted once 32 newer ones
 * were in it. All 10,000 were still alive after `edenGC()`, and 32 after `fullGC()`. A Set of
 * numbers used that way grew the heap by about 80 bytes per add until a full collection.
 * Under a high connection rate, Maps and Sets of connections thus moved thousands of closed
 * connections, with their sockets and buffers, into the old generation, and full collections
 * ran several times a second. A deleted item here leaves a hole, which refers to nothing.
 * `add` compacts the list once it has more holes than live items, so holes cost amortized
 * constant time.
 */
export class SlotList<T> {
  #items: (T | undefined)[] = [];
  #size = 0;
  readonly #slot: SlotAccess<T>;

  constructor(slot: SlotAccess<T>) {
    this.#slot = slot;
  }

  /** Number of items in the list. */
  get size(): number {
    return this.#size;
  }

  /** Returns true when `item` is in this list. */
  has(item: T): boolean {
    const slot = this.#slot.get(item);

    return slot >= 0 && this.#items[slot] === item;
  }

  /** Appends an item that is in no list using the same slot. */
  add(item: T): void {
    if (this.#items.length >= 2 * this.#size + MIN_HOLES) {
      this.#compact();
    }
    this.#slot.set(item, this.#items.length);
    this.#items.push(item);
    this.#size++;
  }

  /** Removes an item. Returns false when it was not in this list. */
  delete(item: T): boolean {
    const slot = this.#slot.get(item);
    if (slot < 0 || this.#items[slot] !== item) {
      return false;
    }

    this.#items[slot] = undefined;
    this.#slot.set(item, -1);
    this.#size--;
    if (this.#size === 0) {
      this.#items.length = 0;
    }

    return true;
  }

  /** Returns the items, oldest first. Items deleted during the iteration are skipped, but an `add` meanwhile may compact the list in place, and the iteration then skips items. */
  *values(): IterableIterator<T> {
    const items = this.#items;
    for (let index = 0; index < items.length; index++) {
      const item = items[index];
      if (item !== undefined) {
        yield item;
      }
    }
  }

  /** Returns a copy of the items, oldest first. */
  toArray(): T[] {
    return this.#items.filter((item): item is T => item !== undefined);
  }

  /**
   * Moves the live items to the front of the same array, in order, and cuts off the rest. A
   * new array, as `toArray` builds, would allocate on every compaction and then grow again
   * push by push.
   */
  #compact(): void {
    const items = this.#items;
    let liveCount = 0;
    for (let index = 0; index < items.length; index++) {
      const item = items[index];
      if (item === undefined) {
        continue;
      }
      if (liveCount !== index) {
        items[liveCount] = item;
        this.#slot.set(item, liveCount);
      }
      liveCount++;
    }
    items.length = liveCount;
  }
}
