import { afterEach, expect, test } from "bun:test";
import { createBackend } from "../src/backend.ts";
import { systemClock } from "../src/clock.ts";
import { ProbeLoop } from "../src/probe-loop.ts";
import { resolveProbeSettings } from "../src/probes/probe.ts";
import { FullBacklogListener } from "./support/full-backlog.ts";
import { StalledListener } from "./support/stalled-listener.ts";
import { synSentTo } from "./support/syn-sent.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

/** Starts a black hole and returns it with the count of SYN_SENT sockets towards it before any probe. */
async function blackHole(): Promise<{ blackhole: StalledListener; before: number }> {
  const blackhole = await StalledListener.start();
  cleanup.push(() => blackhole.stop());

  return { blackhole, before: synSentTo(blackhole.port) };
}

/** Creates a tcp probe loop of `target`, stopped after the test, whose results go to `onResult`. */
function tcpLoop(target: string, intervalMs: number, timeoutMs: number, onResult: (failure: string | undefined) => void): ProbeLoop {
  const settings = resolveProbeSettings({ kind: "tcp", intervalMs, timeoutMs })!;
  const loop = new ProbeLoop(createBackend("a", target), settings, systemClock, onResult);
  cleanup.push(() => loop.stop());

  return loop;
}

test("ProbeLoop closes a timed-out connect at once", async () => {
  const { blackhole, before } = await blackHole();
  const results: (string | undefined)[] = [];
  // SYN_SENT sockets of the probes left when each result arrives, after its timeout closed the socket.
  const leftAtResult: number[] = [];
  const loop = tcpLoop(blackhole.target, 100, 50, (failure) => {
    results.push(failure);
    leftAtResult.push(synSentTo(blackhole.port) - before);
  });
  let maxInFlight = 0;

  loop.start();
  await waitFor("eight probe results", () => {
    maxInFlight = Math.max(maxInFlight, synSentTo(blackhole.port) - before);

    return results.length >= 8;
  });

  expect(results).toEqual(Array<string>(results.length).fill("timed out after 50 ms"));
  expect(leftAtResult).toEqual(Array<number>(leftAtResult.length).fill(0));
  expect(maxInFlight).toBe(1);
});

test("ProbeLoop stop closes a pending connect", async () => {
  const { blackhole, before } = await blackHole();
  const results: (string | undefined)[] = [];
  const loop = tcpLoop(blackhole.target, 10_000, 10_000, (failure) => results.push(failure));

  loop.start();
  await waitFor("the probe's connect to be in flight", () => synSentTo(blackhole.port) - before === 1);
  loop.stop();

  expect(synSentTo(blackhole.port) - before).toBe(0);
  await Bun.sleep(100);
  expect(results).toEqual([]);
});

test("ProbeLoop passes once a black hole accepts again", async () => {
  // Each probe's connect is closed at its timeout, so the first probe after the accept gets
  // the free place in the accept queue. A connect kept past its probe's timeout would take
  // that place at its next SYN retry and leave none for the next probe.
  const blackhole = await FullBacklogListener.start();
  cleanup.push(() => blackhole.stop());
  const results: (string | undefined)[] = [];
  const loop = tcpLoop(blackhole.target, 200, 100, (failure) => results.push(failure));

  loop.start();
  await waitFor("ten probe results", () => results.length >= 10);
  const failed = results.length;
  blackhole.accept();
  await waitFor("the listener to accept its queued connection", () => blackhole.events.includes("accepted"));
  const acceptedAt = performance.now();
  await waitFor("a probe to pass", () => results.slice(failed).includes(undefined), 5000);
  const passedAfterMs = performance.now() - acceptedAt;

  expect(results.slice(0, failed)).toEqual(Array<string>(failed).fill("timed out after 100 ms"));
  expect(passedAfterMs).toBeLessThan(1000);
}, 20_000);

test("ProbeLoop default timeout is the shorter interval", async () => {
  const { blackhole } = await blackHole();
  const results: (string | undefined)[] = [];
  const settings = resolveProbeSettings({ kind: "tcp", intervalMs: 300 })!;
  const loop = new ProbeLoop(createBackend("a", blackhole.target), settings, systemClock, (failure) => results.push(failure));
  cleanup.push(() => loop.stop());

  loop.start();
  await waitFor("two probe results", () => results.length >= 2, 5000);

  expect(results.slice(0, 2)).toEqual(["timed out after 300 ms", "timed out after 300 ms"]);
});
