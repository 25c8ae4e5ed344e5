/** Warnings the compiled `dist/tinylb` logs at start-up for settings that have no effect. */
import { afterEach, expect, test } from "bun:test";
import { TinylbProcess } from "./support/tinylb-process.ts";

const started: TinylbProcess[] = [];
afterEach(async () => {
  for (const balancer of started.splice(0)) {
    await balancer[Symbol.asyncDispose]();
  }
});

test("binary warns about a resolver without DNS names", async () => {
  // No DNS query is sent, because nothing queries the resolver: that is what the warning reports.
  const balancer = TinylbProcess.start(["--listen", "127.0.0.1:0", "--backend", "a=127.0.0.1:9", "--dns-resolver", "127.0.0.1:5353"]);
  started.push(balancer);
  await balancer.waitForLog("tinylb started");
  await balancer.waitForLog("a DNS resolver is set but no DNS name is");

  expect(balancer.stderr).toContain("WARN  a DNS resolver is set but no DNS name is, so it is never asked");
  expect(balancer.stderr).toContain("resolvers=127.0.0.1:5353");
  expect(await balancer.stop()).toBe(0);
});

test("binary starts without the resolver warning when unset", async () => {
  const balancer = TinylbProcess.start(["--listen", "127.0.0.1:0", "--backend", "a=127.0.0.1:9"]);
  started.push(balancer);
  await balancer.waitForLog("tinylb started");

  expect(await balancer.stop()).toBe(0);
  await balancer.waitForLog("tinylb stopped");
  expect(balancer.stderr).not.toContain("DNS resolver");
});
