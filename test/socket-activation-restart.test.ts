/**
 * A restart as `systemctl restart` does it: SIGTERM, wait for the exit, start again. One
 * client stays connected, as a kubelet's watch does, so the old tinylb drains for its whole
 * shutdown grace. Meanwhile clients connect every 5 ms. With a socket from the service manager
 * (a Python stand-in for systemd, see ServiceManager), they wait in its backlog until the next
 * tinylb serves them. When tinylb binds the port itself, they are refused until it is up.
 */
import { afterEach, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { TestBackend, TestClient } from "./support/backends.ts";
import { type ConnectLoopResult, runConnectLoop } from "./support/connect-loop.ts";
import { ServiceManager } from "./support/service-manager.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { BINARY, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor } from "./support/wait.ts";

const GRACE = "1s";
const LOOP_MS = 3000;
const INTERVAL_MS = 5;
/** When the restart begins, after the loop started. */
const RESTART_AFTER_MS = 300;

const workDir = tempDirectory("tinylb-activation-restart-");
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

function echoBackend(): TestBackend {
  const backend = TestBackend.echo("a");
  cleanup.push(() => backend.stop());

  return backend;
}

async function holdConnection(port: number): Promise<void> {
  const held = await TestClient.connect(port);
  cleanup.push(() => held.close());
  await waitFor("the held client's greeting", () => held.firstLine === "a");
}

test.each([1, 2])("restart with a passed socket refuses no client (%i workers)", async (workers) => {
  const backend = echoBackend();
  const manager = await ServiceManager.start();
  cleanup.push(() => manager.stop());
  const log = join(workDir, `activated-${workers}.log`);
  const argv = [BINARY, "--listen", `127.0.0.1:${manager.port}`, "--backend", `a=${backend.target}`, "--shutdown-grace", GRACE, "--workers", String(workers), "--admin", "off"];
  await manager.startService(argv, log);
  await holdConnection(manager.port);

  const loop = runConnectLoop(manager.port, LOOP_MS, INTERVAL_MS);
  await Bun.sleep(RESTART_AFTER_MS);
  expect(await manager.stopService()).toBe(0);
  await manager.startService(argv, log);
  const result = await loop;
  report(`passed socket, ${workers} workers`, result);

  expect(result.refused).toBe(0);
  expect(result.failed).toBe(0);
  expect(result.served).toBe(result.attempts);
  // The clients that connected during the drain waited for the next tinylb.
  expect(result.maxWaitMs).toBeGreaterThan(500);
}, 60_000);

test("restart without a passed socket refuses clients", async () => {
  const backend = echoBackend();
  const args = ["--backend", `a=${backend.target}`, "--shutdown-grace", GRACE];
  const first = TinylbProcess.start(["--listen", "127.0.0.1:0", ...args]);
  cleanup.push(() => first[Symbol.asyncDispose]());
  await first.waitForLog("tinylb started");
  const port = Number(/listener=127\.0\.0\.1:(\d+)/.exec(first.stderr)![1]);
  await holdConnection(port);

  const loop = runConnectLoop(port, LOOP_MS, INTERVAL_MS);
  await Bun.sleep(RESTART_AFTER_MS);
  expect(await first.stop()).toBe(0);
  const second = TinylbProcess.start(["--listen", `127.0.0.1:${port}`, ...args]);
  cleanup.push(() => second[Symbol.asyncDispose]());
  const result = await loop;
  report("tinylb binds the port", result);

  expect(result.refused).toBeGreaterThan(0);
  // A client still in the old listener's accept queue when it closes gets a reset, not a refusal.
  expect(result.failed).toBeLessThanOrEqual(2);
  expect(result.refused + result.served + result.failed).toBe(result.attempts);
  expect(await second.stop()).toBe(0);
}, 60_000);

/** Prints the figures, which docs/reliability.md quotes. */
function report(label: string, result: ConnectLoopResult): void {
  console.log(`${label}: ${result.attempts} connects, ${result.refused} refused, ${result.served} served, ${result.failed} failed, longest wait ${Math.round(result.maxWaitMs)} ms`);
}

test("descriptor-guard pause accepts on the passed socket again", async () => {
  const backend = echoBackend();
  const manager = await ServiceManager.start();
  cleanup.push(() => manager.stop());
  const log = join(workDir, "descriptor-guard.log");
  // bash keeps its pid when it execs tinylb, so LISTEN_PID still names tinylb.
  await manager.startService(["/bin/bash", "-c", `ulimit -n 64 && exec "$0" "$@"`, BINARY, "--listen", `127.0.0.1:${manager.port}`, "--backend", `a=${backend.target}`, "--admin", "off"], log);
  const logged = (text: string): boolean => readFileSync(log, "utf8").includes(text);
  await waitFor("tinylb to start", () => logged("tinylb started"));

  // Each relayed connection takes two descriptors, so fewer than 40 clients reach the limit of 64.
  const clients: TestClient[] = [];
  cleanup.push(() => clients.forEach((client) => client.close()));
  for (let i = 0; i < 40 && !logged("file descriptor limit nearly reached"); i++) {
    clients.push(await TestClient.connect(manager.port));
    await waitFor("the greeting", () => clients.at(-1)!.firstLine === "a" || logged("file descriptor limit nearly reached"));
  }
  await waitFor("the descriptor-guard pause", () => logged("file descriptor limit nearly reached"));

  // A client that connects during the pause waits in the backlog of the passed socket.
  const waiting = await TestClient.connect(manager.port);
  cleanup.push(() => waiting.close());
  clients.splice(0).forEach((client) => client.close());
  await waitFor("the listener to accept again", () => logged("file descriptors are free again; accepting clients"));
  await waitFor("the waiting client's greeting", () => waiting.firstLine === "a");
  waiting.close();
  expect(await manager.stopService()).toBe(0);
}, 60_000);
