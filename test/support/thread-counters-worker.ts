/**
 * A worker thread for test/thread-counters.test.ts: it wraps the SharedArrayBuffer it is sent,
 * opens connections up to the cap, takes turns, and reports what it got.
 */
import { ThreadCounters } from "../../src/thread-counters.ts";

declare const self: Worker;

self.onmessage = (event: MessageEvent<{ buffer: SharedArrayBuffer; opens: number; cap: number; turns: number }>) => {
  const { buffer, opens, cap, turns } = event.data;
  const counters = new ThreadCounters(buffer);
  let opened = 0;
  for (let i = 0; i < opens; i++) {
    if (counters.tryOpen(cap)) {
      opened++;
    }
  }
  const takenTurns: number[] = [];
  for (let i = 0; i < turns; i++) {
    takenTurns.push(counters.takeTurns());
  }
  self.postMessage({ opened, taken: takenTurns });
};
