/**
 * End-to-end tests of the idle timeout through `dist/tinylb`: the flag, the config key with a
 * reload, and `--workers 2`, whose threads each close their own idle connections.
 */
import { afterEach, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { TestBackend, TestClient } from "./support/backends.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { listenedPort, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor } from "./support/wait.ts";

/** Backstop for one test; the waits inside carry the real deadlines. */
const TEST_TIMEOUT_MS = 60_000;

const directory = tempDirectory("tinylb-idle-e2e-");

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
}, TEST_TIMEOUT_MS);

/** Starts an echo backend "a" that greets each client with its id. */
function echoBackend(): TestBackend {
  const backend = TestBackend.echo("a");
  cleanup.push(() => backend.stop());

  return backend;
}

/** Starts dist/tinylb with `args` and waits for its start line. */
async function startTinylb(args: string[]): Promise<{ tinylb: TinylbProcess; port: number }> {
  const tinylb = TinylbProcess.start(args);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());
  await tinylb.waitForLog("tinylb started");

  return { tinylb, port: listenedPort(tinylb.stderr) };
}

/** Connects a client and waits for the backend's greeting. */
async function greetedClient(port: number): Promise<TestClient> {
  const client = await TestClient.connect(port);
  cleanup.push(() => client.socket.terminate());
  await waitFor("the greeting", () => client.firstLine === "a" || client.closed);

  return client;
}

/** Writes a line through `client` every 200 ms for `durationMs`, and waits for each echo. */
async function keepBusy(client: TestClient, durationMs: number): Promise<void> {
  const end = performance.now() + durationMs;
  for (let line = 0; performance.now() < end && !client.closed; line++) {
    client.socket.write(`${line}\n`);
    await waitFor(`echo of line ${line}`, () => client.received.includes(`\n${line}\n`) || client.closed);
    await Bun.sleep(200);
  }
}

test("binary resets an idle connection with --idle-timeout", async () => {
  const backend = echoBackend();
  const { tinylb, port } = await startTinylb(["--listen", "127.0.0.1:0", "--backend", `a=${backend.target}`, "--idle-timeout", "1s", "--log-level", "debug"]);
  expect(tinylb.stderr).toContain(" idleTimeout=1s ");

  const idle = await greetedClient(port);
  const busy = await greetedClient(port);
  await keepBusy(busy, 3000);

  await waitFor("the idle client to be closed", () => idle.closed, 10_000);
  expect((idle.closeError as { code?: string } | undefined)?.code).toBe("ECONNRESET");
  expect(busy.closed).toBe(false);
  await tinylb.waitForLog(/DEBUG connection closed .*backend=a target=127\.0\.0\.1:\d+ kind=closed reason="idle timeout"/);
  expect(await tinylb.stop()).toBe(0);
}, TEST_TIMEOUT_MS);

test("binary applies idleTimeout from the config file on reload", async () => {
  const backend = echoBackend();
  const config = join(directory, "reload.yaml");
  const base = ["listen: 127.0.0.1:0", "backends:", `  - { id: a, target: "${backend.target}" }`];
  writeFileSync(config, [...base, "idleTimeout: off", ""].join("\n"));
  const { tinylb, port } = await startTinylb(["--config", config, "--no-watch-config"]);
  expect(tinylb.stderr).toContain(" idleTimeout=off ");

  // Off: the connection stays open while idle, then the reload turns the timeout on for it.
  const idle = await greetedClient(port);
  await Bun.sleep(1500);
  expect(idle.closed).toBe(false);
  writeFileSync(config, [...base, "idleTimeout: 1s", ""].join("\n"));
  tinylb.signal("SIGHUP");
  await tinylb.waitForLog('applied="idleTimeout=off->1s"');
  await waitFor("the idle client to be closed", () => idle.closed, 10_000);
  expect((idle.closeError as { code?: string } | undefined)?.code).toBe("ECONNRESET");

  // Raised: a connection idle past the old value stays open.
  writeFileSync(config, [...base, "idleTimeout: 1m", ""].join("\n"));
  tinylb.signal("SIGHUP");
  await tinylb.waitForLog('applied="idleTimeout=1s->1m"');
  const next = await greetedClient(port);
  await Bun.sleep(2500);
  expect(next.closed).toBe(false);
  next.close();
  expect(await tinylb.stop()).toBe(0);
}, TEST_TIMEOUT_MS);

test("binary with --workers 2 closes idle connections in both threads", async () => {
  const backend = echoBackend();
  const { tinylb, port } = await startTinylb([
    "--listen", "127.0.0.1:0",
    "--backend", `a=${backend.target}`,
    "--idle-timeout", "1s",
    "--workers", "2",
    "--metrics", "127.0.0.1:0",
    "--log-level", "debug",
  ]);
  const metricsPort = Number(/metrics server listening .*listener=127\.0\.0\.1:(\d+)/.exec(tinylb.stderr)?.[1]);

  // SO_REUSEPORT hashes each client to one of the two threads; 24 reach both in practice.
  const clients: TestClient[] = [];
  for (let i = 0; i < 24; i++) {
    clients.push(await greetedClient(port));
  }
  await waitFor("every client to be closed", () => clients.every((client) => client.closed), 10_000);

  const closedLines = (): string[] => tinylb.stderr.split("\n").filter((line) => line.includes('reason="idle timeout"'));
  await waitFor("a close line for every client", () => closedLines().length === 24);
  expect(closedLines().some((line) => line.includes("worker=1"))).toBe(true);
  expect(closedLines().some((line) => !line.includes("worker=1"))).toBe(true);
  // Workers send their counters every second, so the sum may take that long to arrive.
  const scrape = async (): Promise<string> => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  await waitFor("the metrics to count every thread's closes", async () => (await scrape()).includes("\ntinylb_connections_idle_closed_total 24\n"), 10_000);
  expect(await tinylb.stop()).toBe(0);
}, TEST_TIMEOUT_MS);
