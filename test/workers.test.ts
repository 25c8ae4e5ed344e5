import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TestBackend, TestClient } from "./support/backends.ts";
import { listenedPort, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

/** Connections opened per test; SO_REUSEPORT hashes each to one of two threads. */
const CLIENTS = 24;

function writeConfig(path: string, backends: TestBackend[]): void {
  const lines = backends.map((backend) => `  - { id: ${backend.id}, target: "${backend.target}" }`);
  writeFileSync(path, `listen: 127.0.0.1:0\nbackends:\n${lines.join("\n")}\n`);
}

async function metric(adminPath: string, line: RegExp): Promise<number> {
  const response = await fetch("http://localhost/metrics", { unix: adminPath } as RequestInit);
  const match = line.exec(await response.text());

  return match === null ? Number.NaN : Number(match[1]);
}

test("workers share the port, follow set changes and add up counters", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tinylb-workers-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const backends = ["a", "b"].map((id) => TestBackend.echo(id));
  cleanup.push(() => backends.forEach((backend) => backend.stop()));
  const config = join(dir, "tinylb.yaml");
  const adminPath = join(dir, "admin.sock");
  writeConfig(config, backends);

  const tinylb = TinylbProcess.start(["--config", config, "--workers", "2", "--admin", `unix:${adminPath}`, "--no-watch-config", "--shutdown-grace", "1s", "--log-level", "debug"]);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());
  await tinylb.waitForLog("tinylb started");
  const port = listenedPort(tinylb.stderr);

  const clients: TestClient[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    clients.push(await TestClient.connect(port));
  }
  cleanup.push(() => clients.forEach((client) => client.socket.terminate()));
  await waitFor("every greeting", () => clients.every((client) => client.firstLine !== ""));

  // Both threads accepted: worker lines carry worker=1, main-thread lines carry no worker field.
  const opened = tinylb.stderr.split("\n").filter((line) => line.includes("connection opened"));
  expect(opened.length).toBe(CLIENTS);
  expect(opened.filter((line) => line.includes("worker=1")).length).toBeGreaterThan(0);
  expect(opened.filter((line) => !line.includes("worker=")).length).toBeGreaterThan(0);

  // Removing a: its connections end in both threads, b's stay open and keep relaying.
  writeConfig(config, [backends[1]!]);
  tinylb.signal("SIGHUP");
  const toA = clients.filter((client) => client.firstLine === "a");
  const toB = clients.filter((client) => client.firstLine === "b");
  expect(toA.length + toB.length).toBe(CLIENTS);
  await waitFor("a's clients to be closed", () => toA.every((client) => client.ended || client.closed), 10_000);
  for (const client of toB) {
    client.socket.write("still here\n");
  }
  await waitFor("echo through b", () => toB.every((client) => client.received.includes("still here")));
  expect(toB.every((client) => !client.closed)).toBe(true);

  // Counters of both threads add up on /metrics once the workers sent their deltas.
  await waitFor("accepted clients of both threads on /metrics", async () => (await metric(adminPath, /^tinylb_clients_accepted_total (\d+)$/m)) === CLIENTS, 10_000);
  const totalA = await metric(adminPath, /^tinylb_backend_connections_total\{backend="a"\} (\d+)$/m);
  const totalB = await metric(adminPath, /^tinylb_backend_connections_total\{backend="b"\} (\d+)$/m);
  expect(totalA).toBe(toA.length);
  expect(totalB).toBe(toB.length);

  expect(await tinylb.stop()).toBe(0);
  expect(toB.every((client) => client.ended || client.closed)).toBe(true);
});
