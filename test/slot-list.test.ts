import { expect, test } from "bun:test";
import { edenGC, fullGC, heapStats } from "bun:jsc";
import { type SlotAccess, SlotList } from "../src/slot-list.ts";

interface Item {
  name: string;
  slot?: number;
}

const SLOT: SlotAccess<Item> = {
  get: (item) => item.slot ?? -1,
  set: (item, slot) => {
    item.slot = slot;
  },
};

function items(count: number): Item[] {
  return Array.from({ length: count }, (_, index) => ({ name: `i${index}` }));
}

function names(list: SlotList<Item>): string[] {
  return [...list.values()].map((item) => item.name);
}

test("SlotList keeps insertion order", () => {
  const list = new SlotList(SLOT);
  const [a, b, c] = items(3) as [Item, Item, Item];
  list.add(a);
  list.add(b);
  list.add(c);

  expect(list.size).toBe(3);
  expect(names(list)).toEqual(["i0", "i1", "i2"]);
  expect(list.toArray()).toEqual([a, b, c]);
});

test("SlotList deletes only its own items", () => {
  const list = new SlotList(SLOT);
  const other = new SlotList(SLOT);
  const [a, b, stranger] = items(3) as [Item, Item, Item];
  list.add(a);
  list.add(b);
  other.add(stranger);

  expect(list.has(stranger)).toBe(false);
  expect(list.delete(stranger)).toBe(false);
  expect(other.has(stranger)).toBe(true);
  expect(list.delete(a)).toBe(true);
  expect(list.delete(a)).toBe(false);
  expect(a.slot).toBe(-1);
  expect(list.has(a)).toBe(false);
  expect(list.size).toBe(1);
  expect(names(list)).toEqual(["i1"]);
});

test("SlotList compacts and keeps order", () => {
  const list = new SlotList(SLOT);
  const all = items(200);
  for (const item of all) {
    list.add(item);
  }
  // Delete all but every tenth item, then add more, so that `add` compacts the holes away.
  for (const [index, item] of all.entries()) {
    if (index % 10 !== 0) {
      list.delete(item);
    }
  }
  const later: Item[] = items(100).map((item) => ({ name: `later-${item.name}` }));
  for (const item of later) {
    list.add(item);
  }

  const survivors = all.filter((_, index) => index % 10 === 0);
  expect(list.size).toBe(survivors.length + later.length);
  expect(list.toArray()).toEqual([...survivors, ...later]);
  for (const item of [...survivors, ...later]) {
    expect(list.has(item)).toBe(true);
    expect(list.toArray()[item.slot!]).toBe(item);
  }
});

test("SlotList empties and fills again", () => {
  const list = new SlotList(SLOT);
  const [a, b] = items(2) as [Item, Item];
  list.add(a);
  list.delete(a);
  list.add(b);

  expect(list.size).toBe(1);
  expect(b.slot).toBe(0);
  expect(names(list)).toEqual(["i1"]);
});

test("SlotList skips items deleted while iterating", () => {
  const list = new SlotList(SLOT);
  const all = items(4);
  for (const item of all) {
    list.add(item);
  }

  const seen: string[] = [];
  for (const item of list.values()) {
    seen.push(item.name);
    if (item.name === "i1") {
      list.delete(all[2]!);
    }
  }
  expect(seen).toEqual(["i0", "i1", "i3"]);
});

test("SlotList frees deleted items at a young collection", () => {
  const list = new SlotList<Item & { payload?: Uint8Array }>(SLOT);
  const countBuffers = (): number => (heapStats().objectTypeCounts as Record<string, number>)["Uint8Array"] ?? 0;
  // Like a server's pool: the list survives a collection while it has items, and then items
  // come and go with 32 of them in it at a time.
  const open: Item[] = [];
  const openOne = (index: number): void => {
    const item = { name: `i${index}`, payload: new Uint8Array(16) };
    list.add(item);
    open.push(item);
  };
  for (let index = 0; index < 32; index++) {
    openOne(index);
  }
  fullGC();
  const before = countBuffers();

  for (let index = 32; index < 10_032; index++) {
    openOne(index);
    list.delete(open.shift()!);
  }
  edenGC();

  // A Set used the same way kept all 10,000 buffers through the young collection (Bun 1.4.4).
  expect(countBuffers() - before).toBeLessThan(1000);
  expect(list.size).toBe(32);
});
