import { afterEach, expect, test } from "bun:test";
import { ConnectDeadlines, type TimedDial } from "../src/connect-deadlines.ts";
import { waitFor } from "./support/wait.ts";

// A dial here is a plain object: the deadline logic needs no socket.
class FakeDial implements TimedDial {
  pending = true;
  timedOutAt: number | undefined;
  readonly deadline: number;
  readonly #onTimeout: () => void;

  constructor(timeoutMs: number, onTimeout: () => void = () => {}) {
    this.deadline = performance.now() + timeoutMs;
    this.#onTimeout = onTimeout;
  }

  timedOut(): void {
    expect(this.pending).toBe(true);
    this.pending = false;
    this.timedOutAt = performance.now();
    this.#onTimeout();
  }
}

const watchers: ConnectDeadlines[] = [];
afterEach(() => {
  for (const deadlines of watchers.splice(0)) {
    deadlines.stop();
  }
});

function deadlines(): ConnectDeadlines {
  const created = new ConnectDeadlines();
  watchers.push(created);

  return created;
}

test("ConnectDeadlines times out a dial at its deadline", async () => {
  const watched = deadlines();
  const dial = new FakeDial(50);
  watched.add(dial);

  await waitFor("the dial to time out", () => dial.timedOutAt !== undefined, 2000);
  expect(dial.timedOutAt!).toBeGreaterThanOrEqual(dial.deadline - 1);
});

test("ConnectDeadlines skips dials that settled", async () => {
  const watched = deadlines();
  const settled = new FakeDial(20);
  const waiting = new FakeDial(60);
  watched.add(settled);
  watched.add(waiting);
  settled.pending = false;

  await waitFor("the pending dial to time out", () => waiting.timedOutAt !== undefined, 2000);
  expect(settled.timedOutAt).toBeUndefined();
});

test("ConnectDeadlines honours a shorter timeout added later", async () => {
  const watched = deadlines();
  const long = new FakeDial(5000);
  const short = new FakeDial(30);
  watched.add(long);
  watched.add(short);

  await waitFor("the short dial to time out", () => short.timedOutAt !== undefined, 2000);
  expect(long.timedOutAt).toBeUndefined();
  expect(long.pending).toBe(true);
});

test("ConnectDeadlines keeps pending dials when it clears settled ones", async () => {
  const watched = deadlines();
  const waiting = new FakeDial(80);
  watched.add(waiting);
  // Many dials that settle at once, as under load, make the list clear itself.
  for (let index = 0; index < 1000; index++) {
    const quick = new FakeDial(40);
    watched.add(quick);
    quick.pending = false;
  }

  await waitFor("the pending dial to time out", () => waiting.timedOutAt !== undefined, 2000);
});

test("ConnectDeadlines watches a dial started by a timeout", async () => {
  const watched = deadlines();
  const next = new FakeDial(60);
  const first = new FakeDial(20, () => watched.add(next));
  watched.add(first);

  await waitFor("the second dial to time out", () => next.timedOutAt !== undefined, 2000);
  expect(first.timedOutAt).toBeDefined();
});
