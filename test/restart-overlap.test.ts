/**
 * A restart where the new tinylb starts while the old one still drains. The old one gives up
 * its listen locks at SIGTERM, but keeps them through a descriptor-guard pause, and the new one
 * takes over its admin socket path.
 */
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Socket } from "bun";
import { TestBackend, TestClient } from "./support/backends.ts";
import { EchoBackend, FaultProcess } from "./support/fault-peers.ts";
import { listenedPort, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor, within } from "./support/wait.ts";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "tinylb-restart-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));

  return dir;
}

async function readyz(socketPath: string): Promise<{ status: number; body: { status?: string } }> {
  // A fresh connection each time: a kept-alive one would still reach the first tinylb.
  const response = await fetch("http://localhost/readyz", { unix: socketPath, keepalive: false, headers: { connection: "close" } } as RequestInit);

  return { status: response.status, body: (await response.json()) as { status?: string } };
}

function start(args: string[]): TinylbProcess {
  const tinylb = TinylbProcess.start(args);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());

  return tinylb;
}

test("new tinylb serves while the old one drains", async () => {
  const backend = TestBackend.echo("a");
  cleanup.push(() => backend.stop());
  const socketPath = join(tempDir(), "admin.sock");
  const args = ["--backend", `a=${backend.target}`, "--shutdown-grace", "1m", "--admin", `unix:${socketPath}`];
  const first = start(["--listen", "127.0.0.1:0", ...args]);
  await first.waitForLog("tinylb started");
  const port = listenedPort(first.stderr);
  const draining = await TestClient.connect(port);
  cleanup.push(() => draining.close());
  await waitFor("greeting through the first tinylb", () => draining.firstLine === "a");

  first.signal("SIGTERM");
  await first.waitForLog("SIGTERM received; draining");
  expect(await readyz(socketPath)).toEqual({ status: 503, body: expect.objectContaining({ status: "draining" }) });

  const second = start(["--listen", `127.0.0.1:${port}`, ...args]);
  await second.waitForLog("tinylb started");
  expect(second.stderr).toContain("admin socket taken over from a draining tinylb");
  const fresh = await TestClient.connect(port);
  cleanup.push(() => fresh.close());
  await waitFor("greeting through the second tinylb", () => fresh.firstLine === "a");
  expect(await readyz(socketPath)).toEqual({ status: 200, body: expect.objectContaining({ status: "ready" }) });

  // The first tinylb still relays its open connection.
  draining.socket.write("still draining\n");
  await waitFor("echo through the draining tinylb", () => draining.received.includes("still draining"));
  expect(first.process.exitCode).toBeNull();

  draining.close();
  expect(await within("the first tinylb to exit", first.process.exited, 20_000)).toBe(0);
  // The first tinylb left the second one's admin socket in place.
  expect(statSync(socketPath).isSocket()).toBe(true);
  expect((await readyz(socketPath)).status).toBe(200);
  fresh.close();
  expect(await within("the second tinylb to exit", second.stop(), 20_000)).toBe(0);
}, 60_000);

test("descriptor-guard pause keeps the listen lock", async () => {
  const backend = new EchoBackend();
  cleanup.push(() => backend.stop());
  await using first = new FaultProcess(["--listen", "127.0.0.1:0", "--backend", `echo=${backend.target}`], { descriptorLimit: 64 });
  const port = await first.port();

  // Each relayed connection takes two descriptors, so fewer than 40 clients reach the limit of 64.
  const clients: Socket<undefined>[] = [];
  cleanup.push(() => clients.forEach((client) => client.terminate()));
  for (let i = 0; i < 40 && first.countLines("file descriptor limit nearly reached") === 0; i++) {
    try {
      clients.push(await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {}, error() {} } }));
    } catch {
      break;
    }
  }
  await waitFor("the descriptor-guard pause", () => first.countLines("file descriptor limit nearly reached") === 1);

  const second = start(["--listen", `127.0.0.1:${port}`, "--backend", `echo=${backend.target}`]);
  expect(await within("the second tinylb to exit", second.process.exited, 20_000)).toBe(1);
  expect(second.stderr).toContain(`listen on 127.0.0.1:${port} failed: the address is already in use by another tinylb`);
  expect(first.running).toBe(true);
}, 60_000);
