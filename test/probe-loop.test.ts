import { afterEach, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { createBackend } from "../src/backend.ts";
import { systemClock } from "../src/clock.ts";
import { ProbeLoop } from "../src/probe-loop.ts";
import { resolveProbeSettings } from "../src/probes/probe.ts";
import { StalledListener } from "./support/stalled-listener.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

/** Sockets of this machine in SYN_SENT towards loopback port `port`, read from /proc/net/tcp (state 02). */
function synSentTo(port: number): number {
  const remote = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;

  return readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .filter((line) => {
      const fields = line.trim().split(/\s+/);

      return fields[2] === remote && fields[3] === "02";
    }).length;
}

test("ProbeLoop keeps one connect to a target that drops SYNs", async () => {
  const blackhole = await StalledListener.start();
  cleanup.push(() => blackhole.stop());
  const settings = resolveProbeSettings({ kind: "tcp", intervalMs: 100, timeoutMs: 50 })!;
  const results: (string | undefined)[] = [];
  const loop = new ProbeLoop(createBackend("a", blackhole.target), settings, systemClock, (failure) => results.push(failure));
  cleanup.push(() => loop.stop());
  const before = synSentTo(blackhole.port);

  loop.start();
  await waitFor("eight probe results", () => results.length >= 8, 10_000);

  expect(results[0]).toBe("timed out after 50 ms");
  expect(results.slice(1).every((failure) => failure?.startsWith("the connect of an earlier probe is still in flight"))).toBe(true);
  expect(synSentTo(blackhole.port) - before).toBe(1);
});
