import { expect, test } from "bun:test";
import { createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import { RoundRobinSelector } from "../src/round-robin-selector.ts";
import { ThreadCounters } from "../src/thread-counters.ts";

function set(...ids: string[]): BackendSet {
  return new BackendSet(ids.map((id, index) => createBackend(id, `127.0.0.1:${1000 + index}`)));
}

test("tryOpen stops at the cap", () => {
  const counters = new ThreadCounters();

  expect([counters.tryOpen(2), counters.tryOpen(2), counters.tryOpen(2)]).toEqual([true, true, false]);
  expect(counters.open).toBe(2);
  counters.closed();
  expect(counters.tryOpen(2)).toBe(true);
  expect(counters.tryOpen(0)).toBe(true);
  expect(counters.open).toBe(3);
});

test("a worker thread shares the counts", async () => {
  const counters = new ThreadCounters();
  const worker = new Worker(new URL("./support/thread-counters-worker.ts", import.meta.url).href);
  try {
    const reply = new Promise<{ opened: number; taken: number[] }>((resolve) => {
      worker.onmessage = (event: MessageEvent<{ opened: number; taken: number[] }>) => resolve(event.data);
    });
    expect(counters.tryOpen(5)).toBe(true);
    expect(counters.takeTurns()).toBe(0);
    worker.postMessage({ buffer: counters.buffer, opens: 10, cap: 5, turns: 3 });
    const { opened, taken } = await reply;

    // The worker found the main thread's connection and turn: 4 more fit under the cap of 5.
    expect(opened).toBe(4);
    expect(counters.open).toBe(5);
    expect(taken).toEqual([1, 2, 3]);
    expect(counters.takeTurns()).toBe(4);
  } finally {
    worker.terminate();
  }
});

test("selectors sharing turns rotate as one", () => {
  const counters = new ThreadCounters();
  const [first, second] = [new RoundRobinSelector(set("a", "b", "c"), counters), new RoundRobinSelector(set("a", "b", "c"), counters)];

  const picks = [first.next(), first.next(), second.next(), first.next(), second.next(), second.next()].map((backend) => backend?.id);
  expect(picks).toEqual(["a", "b", "c", "a", "b", "c"]);

  // A new set: the next four picks, from either selector, reach each of its backends.
  first.update(set("d", "e", "f", "g"));
  second.update(set("d", "e", "f", "g"));
  const afterChange = [second.next(), first.next(), second.next(), first.next()].map((backend) => backend?.id);
  expect([...afterChange].sort()).toEqual(["d", "e", "f", "g"]);
});

test("a pick that hands out nothing uses no turn", () => {
  const counters = new ThreadCounters();
  const [first, second] = [new RoundRobinSelector(set("a", "b"), counters), new RoundRobinSelector(set("a", "b"), counters)];

  // A degraded balancer's pick: a healthy pass that finds nothing, then a pass over every backend.
  const picks = [first, second, first, second].map((selector) => {
    expect(selector.next(() => false)).toBeUndefined();

    return selector.next()?.id;
  });

  expect(picks).toEqual(["a", "b", "a", "b"]);
});

test("a skipped backend's turn does not favour the next one", () => {
  const counters = new ThreadCounters();
  const [first, second] = [new RoundRobinSelector(set("a", "b", "c"), counters), new RoundRobinSelector(set("a", "b", "c"), counters)];
  const notB = (backend: { id: string }): boolean => backend.id !== "b";

  const picks = Array.from({ length: 6 }, (_, index) => (index % 2 === 0 ? first : second).next(notB)?.id);
  expect(picks).toEqual(["a", "c", "a", "c", "a", "c"]);
});
