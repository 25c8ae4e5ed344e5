import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import { Server } from "../src/server.ts";
import type { ServerOptions } from "../src/server-options.ts";
import { TestBackend, TestClient } from "./support/backends.ts";
import { FullBacklogListener } from "./support/full-backlog.ts";
import { holdClients, tally, terminateClients } from "./support/held-clients.ts";
import { LogLines } from "./support/log-lines.ts";
import { BINARY, listenedPort, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

function setOf(backends: { id: string; target: string }[]): BackendSet {
  return new BackendSet(backends.map((backend) => createBackend(backend.id, backend.target)));
}

async function startServer(backends: { id: string; target: string }[], options: Partial<ServerOptions>): Promise<{ server: Server; port: number; log: LogLines }> {
  const log = new LogLines();
  const server = new Server({ listen: [{ kind: "tcp", host: "127.0.0.1", port: 0 }], logger: log.logger, ...options });
  server.applySet(setOf(backends));
  await server.start();
  cleanup.push(() => server.shutdown(0));
  const address = server.listeners[0]!.address;

  return { server, port: address.kind === "tcp" ? address.port : 0, log };
}

test("leastconn sends new clients to a returning backend", async () => {
  const backends = ["a", "b", "c"].map((id) => TestBackend.echo(id));
  cleanup.push(() => backends.forEach((backend) => backend.stop()));
  const { server, port } = await startServer(backends, { balance: "leastconn" });

  // Equal counts: the rotation breaks every tie, so the order is round-robin's.
  const clients: TestClient[] = [];
  cleanup.push(() => terminateClients(clients));
  expect(await holdClients(port, 9, clients)).toEqual(["a", "b", "c", "a", "b", "c", "a", "b", "c"]);

  // c leaves (its clients are closed) and comes back empty.
  server.applySet(setOf(backends.slice(0, 2)));
  const toC = clients.filter((client) => client.firstLine === "c");
  await waitFor("c's clients to be closed", () => toC.every((client) => client.ended || client.closed));
  server.applySet(setOf(backends));

  // New clients all go to c until the counts are even, then one to each again.
  expect(await holdClients(port, 3, clients)).toEqual(["c", "c", "c"]);
  expect(await holdClients(port, 3, clients)).toEqual(["a", "b", "c"]);
  expect(backends.map((backend) => server.limits.count(backend.target))).toEqual([4, 4, 4]);

  for (const client of clients) {
    client.socket.end();
  }
  await waitFor("the pool to empty", () => server.activeCount === 0);
  expect(backends.map((backend) => server.limits.count(backend.target))).toEqual([0, 0, 0]);
});

test("round-robin leaves a returning backend behind", async () => {
  const backends = ["a", "b", "c"].map((id) => TestBackend.echo(id));
  cleanup.push(() => backends.forEach((backend) => backend.stop()));
  const { server, port } = await startServer(backends, {});

  const clients: TestClient[] = [];
  cleanup.push(() => terminateClients(clients));
  await holdClients(port, 9, clients);
  server.applySet(setOf(backends.slice(0, 2)));
  await waitFor("c's clients to be closed", () => clients.filter((client) => client.firstLine === "c").every((client) => client.ended || client.closed));
  server.applySet(setOf(backends));

  // The contrast to leastconn: the rotation goes on, and c gets only its turn.
  expect(tally(await holdClients(port, 3, clients))).toEqual({ a: 1, b: 1, c: 1 });
  // Nothing is counted per target without leastconn or a cap.
  expect(server.limits.count(backends[0]!.target)).toBe(0);
});

test("balance change counts open connections and dials", async () => {
  const echo = TestBackend.echo("a");
  cleanup.push(() => echo.stop());
  const silent = await FullBacklogListener.start();
  cleanup.push(() => silent.stop());
  const connectTimeoutMs = 1000;
  const { server, port, log } = await startServer(
    [
      { id: "a", target: echo.target },
      { id: "s", target: silent.target },
    ],
    { connectTimeoutMs },
  );

  // Round-robin: the first client reaches a, the second waits on s, whose connect hangs.
  const clients: TestClient[] = [];
  cleanup.push(() => terminateClients(clients));
  expect(await holdClients(port, 1, clients)).toEqual(["a"]);
  clients.push(await TestClient.connect(port));
  await waitFor("the dial to s", () => server.activeCount === 2 && server.pool.size === 1);

  server.setBalance("leastconn");
  expect(server.balance).toBe("leastconn");
  expect(server.limits.count(echo.target)).toBe(1);
  expect(server.limits.count(silent.target)).toBe(1);
  expect(log.withMessage("balance mode changed")[0]).toMatchObject({ balance: "leastconn", open: 2 });

  // The dial to s times out and releases the reservation counted at the change; the client fails over to a.
  await waitFor("the second client to fail over to a", () => clients[1]!.firstLine === "a", connectTimeoutMs + 5000);
  expect(server.limits.count(silent.target)).toBe(0);
  expect(server.limits.count(echo.target)).toBe(2);

  server.setBalance("roundrobin");
  expect(server.limits.count(echo.target)).toBe(0);
  for (const client of clients) {
    client.socket.end();
  }
  await waitFor("the pool to empty", () => server.activeCount === 0);
  expect(server.limits.count(echo.target)).toBe(0);
  expect(log.records.filter((record) => String(record.msg).includes("invariant violated"))).toEqual([]);
});

/** Log lines of connections opened in relay worker 1. */
function openedInWorker(stderr: string): number {
  return stderr.split("\n").filter((line) => line.includes("connection opened") && line.includes("worker=1")).length;
}

test("leastconn compares the counts of every thread", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tinylb-leastconn-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const backends = ["a", "b", "c"].map((id) => TestBackend.echo(id));
  cleanup.push(() => backends.forEach((backend) => backend.stop()));
  const unixPath = join(dir, "lb.sock");
  const adminPath = join(dir, "admin.sock");
  const config = join(dir, "tinylb.yaml");
  // The main thread alone serves the Unix socket listener; the kernel spreads TCP clients over both threads.
  const writeConfig = (count: number, balance: string): void => {
    const entries = backends.slice(0, count).map((backend) => `  - { id: ${backend.id}, target: "${backend.target}" }`);
    writeFileSync(config, `listen: [127.0.0.1:0, "unix:${unixPath}"]\nbalance: ${balance}\nbackends:\n${entries.join("\n")}\n`);
  };
  writeConfig(1, "roundrobin");
  const tinylb = TinylbProcess.start(["--config", config, "--workers", "2", "--admin", `unix:${adminPath}`, "--log-level", "debug", "--no-watch-config", "--shutdown-grace", "1s"]);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());
  await tinylb.waitForLog("tinylb started");
  expect(tinylb.stderr).toMatch(/tinylb started .*balance=roundrobin/);
  const port = listenedPort(tinylb.stderr);

  // Round-robin counts nothing per target; 16 clients over TCP reach a, the only backend.
  const clients: TestClient[] = [];
  cleanup.push(() => terminateClients(clients));
  expect(tally(await holdClients(port, 16, clients))).toEqual({ a: 16 });
  // Two or more in the worker make per-thread counts fail below (all 16 in one thread: 17 in 2^16).
  expect(openedInWorker(tinylb.stderr)).toBeGreaterThanOrEqual(2);

  // Turning leastconn on counts the connections each thread already has open.
  writeConfig(2, "leastconn");
  tinylb.signal("SIGHUP");
  await tinylb.waitForLog(/settings changed in the config file applied .*balance=roundrobin->leastconn/);
  await tinylb.waitForLog(/balance mode changed worker=1 .*open=\d+/);
  // Every Unix socket client goes to b. With only its own counts, the main thread would see
  // fewer than 16 connections to a and send some of them there.
  expect(tally(await holdClients(unixPath, 16, clients))).toEqual({ b: 16 });

  writeConfig(3, "leastconn");
  tinylb.signal("SIGHUP");
  await tinylb.waitForLog(/backend set changed worker=1 .*added="c=/);
  const inWorkerBefore = openedInWorker(tinylb.stderr);
  // The worker has none of b's connections open, but still sends its TCP clients to c.
  expect(tally(await holdClients(port, 16, clients))).toEqual({ c: 16 });
  expect(openedInWorker(tinylb.stderr) - inWorkerBefore).toBeGreaterThanOrEqual(2);

  const status = Bun.spawnSync([BINARY, "status", "--admin", `unix:${adminPath}`]);
  expect(status.stdout.toString()).toContain("\nBalance: leastconn (new clients go to the backend with the fewest connections open or dialing)\n");
  const json = (await (await fetch("http://localhost/v1/backends", { unix: adminPath } as RequestInit)).json()) as { balance: string };
  expect(json.balance).toBe("leastconn");

  for (const client of clients) {
    client.socket.end();
  }
  expect(await tinylb.stop()).toBe(0);
  expect(tinylb.stderr).not.toContain("invariant violated");
}, 60_000);
