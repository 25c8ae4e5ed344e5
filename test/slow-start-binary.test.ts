/**
 * Slow start in `dist/tinylb` with `--workers 2`: every thread weighs a backend that joined the
 * set the same way, `tinylb status`, its JSON and /metrics show the window, and a reload turns
 * slow start off in every thread.
 */
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BalancerStatus } from "../src/balancer-status.ts";
import { TestBackend, type TestClient } from "./support/backends.ts";
import { holdClients, tally, terminateClients } from "./support/held-clients.ts";
import { BINARY, listenedPort, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

/** Log lines of connections opened in relay worker 1. */
function openedInWorker(stderr: string): number {
  return stderr.split("\n").filter((line) => line.includes("connection opened") && line.includes("worker=1")).length;
}

test("slow start applies in every thread", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tinylb-slow-start-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const backends = ["a", "b", "c", "d"].map((id) => TestBackend.echo(id));
  cleanup.push(() => backends.forEach((backend) => backend.stop()));
  const adminPath = join(dir, "admin.sock");
  const config = join(dir, "tinylb.yaml");
  const writeConfig = (count: number, slowStart: string): void => {
    const entries = backends.slice(0, count).map((backend) => `  - { id: ${backend.id}, target: "${backend.target}" }`);
    writeFileSync(config, `listen: 127.0.0.1:0\nbalance: leastconn\nslowStart: ${slowStart}\nbackends:\n${entries.join("\n")}\n`);
  };
  // A window of 10 minutes keeps c's weight near 0.1 while the test runs.
  writeConfig(2, "10m");
  const tinylb = TinylbProcess.start(["--config", config, "--workers", "2", "--admin", `unix:${adminPath}`, "--log-level", "debug", "--no-watch-config", "--shutdown-grace", "1s"]);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());
  await tinylb.waitForLog("tinylb started");
  expect(tinylb.stderr).toMatch(/tinylb started .*slowStart=10m/);
  const port = listenedPort(tinylb.stderr);

  const clients: TestClient[] = [];
  cleanup.push(() => terminateClients(clients));
  expect(tally(await holdClients(port, 16, clients))).toEqual({ a: 8, b: 8 });
  expect(openedInWorker(tinylb.stderr)).toBeGreaterThanOrEqual(2);

  // c joins while a and b stay, so it begins a slow start, which the worker gets with the set.
  writeConfig(3, "10m");
  tinylb.signal("SIGHUP");
  await tinylb.waitForLog(/slow start began component=slow-start backend=c .*cause="joined the set" duration=10m/);
  await tinylb.waitForLog(/backend set changed worker=1 .*added="c=/);
  const inWorkerBefore = openedInWorker(tinylb.stderr);
  // Without slow start, c would take the first 8. With weight 0.1 it scores (0 + 1) / 0.1 = 10
  // against 9 for a and b, and then 20 after its first client.
  const afterReturn = tally(await holdClients(port, 16, clients));
  expect(afterReturn.c ?? 0).toBeGreaterThanOrEqual(1);
  expect(afterReturn.c ?? 0).toBeLessThanOrEqual(2);
  expect(openedInWorker(tinylb.stderr) - inWorkerBefore).toBeGreaterThanOrEqual(2);

  const status = Bun.spawnSync([BINARY, "status", "--admin", `unix:${adminPath}`]).stdout.toString();
  expect(status).toContain("\nSlow start: 10m for each backend that returns (--slow-start, slowStart)\n");
  expect(status).toMatch(/\nSlow start: "c" gets 1\d% of a full share of new clients, a full share in (10m|59\ds)\n/);
  const json = (await (await fetch("http://localhost/v1/backends", { unix: adminPath } as RequestInit)).json()) as BalancerStatus;
  const c = json.backends.find((backend) => backend.id === "c")!;
  expect(json.slowStartMs).toBe(600_000);
  expect(c.slowStartEndsInMs).toBeGreaterThan(570_000);
  expect(c.slowStartWeight).toBeLessThan(0.2);
  expect(json.backends.find((backend) => backend.id === "a")!.slowStartEndsInMs).toBeUndefined();
  const metrics = await (await fetch("http://localhost/metrics", { unix: adminPath } as RequestInit)).text();
  expect(metrics).toMatch(/\ntinylb_backend_slow_start_weight\{backend="c"\} 0\.1\d*\n/);
  expect(metrics).toContain('\ntinylb_backend_slow_start_weight{backend="a"} 1\n');

  // A reload turns slow start off and adds d. The worker applies both before its set log.
  writeConfig(4, "off");
  tinylb.signal("SIGHUP");
  await tinylb.waitForLog(/slow start ended component=slow-start backend=c cause="the reloaded config turned its slow start off"/);
  await tinylb.waitForLog(/backend set changed worker=1 .*added="d=/);
  const inWorkerAfterOff = openedInWorker(tinylb.stderr);
  // c and d have the fewest connections, and no thread weighs c down any more.
  const afterOff = tally(await holdClients(port, 12, clients));
  expect((afterOff.c ?? 0) + (afterOff.d ?? 0)).toBe(12);
  expect(openedInWorker(tinylb.stderr) - inWorkerAfterOff).toBeGreaterThanOrEqual(1);
  // The main thread logs each window once; the worker only follows it.
  expect(tinylb.stderr.split("\n").filter((line) => line.includes("slow start began")).length).toBe(1);

  for (const client of clients) {
    client.socket.end();
  }
  expect(await tinylb.stop()).toBe(0);
  expect(tinylb.stderr).not.toContain("invariant violated");
}, 60_000);
