import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TestBackend, TestClient } from "./support/backends.ts";
import { TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

/** Clients opened per test, twice the cap, so that the cap decides how many are served. */
const CLIENTS = 8;

/**
 * Starts dist/tinylb with `--workers 2` on a Unix socket only, two echo backends and
 * `capFlags`, then keeps CLIENTS clients open, connected one after another. Returns the first line
 * each client read, or "closed" for a client closed without one.
 */
async function firstLinesOfUnixClients(capFlags: string[]): Promise<{ lines: string[]; tinylb: TinylbProcess }> {
  const dir = mkdtempSync(join(tmpdir(), "tinylb-unix-workers-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const backends = [TestBackend.echo("a"), TestBackend.echo("b")];
  cleanup.push(() => backends.forEach((backend) => backend.stop()));
  const path = join(dir, "lb.sock");
  const backendFlags = backends.flatMap((backend) => ["--backend", `${backend.id}=${backend.target}`]);

  const tinylb = TinylbProcess.start(["--listen", `unix:${path}`, ...backendFlags, "--workers", "2", ...capFlags]);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());
  await tinylb.waitForLog("tinylb started");

  const lines: string[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    let client: TestClient;
    try {
      client = await TestClient.connect(path);
    } catch {
      // A client over the cap can be closed before Bun reports its connect: ECONNRESET.
      lines.push("closed");
      continue;
    }
    cleanup.push(() => client.socket.terminate());
    await waitFor(`client ${i} served or closed`, () => client.firstLine !== "" || client.closed);
    lines.push(client.firstLine !== "" ? client.firstLine : "closed");
  }

  return { lines, tinylb };
}

test("Unix-only --workers 2 logs one relaying thread", async () => {
  const { tinylb } = await firstLinesOfUnixClients([]);

  const started = tinylb.stderr.split("\n").find((line) => line.includes("tinylb started"));
  expect(started).toContain("workers=1");
  expect(tinylb.stderr).toContain("--workers needs a TCP listener");
}, 30_000);

test("Unix-only --workers 2 keeps the whole global cap", async () => {
  const { lines, tinylb } = await firstLinesOfUnixClients(["--max-connections", "4"]);

  expect(lines).toEqual(["a", "b", "a", "b", "closed", "closed", "closed", "closed"]);
  expect(tinylb.stderr).not.toContain("perThread=");
}, 30_000);

test("Unix-only --workers 2 keeps the whole backend cap", async () => {
  const { lines, tinylb } = await firstLinesOfUnixClients(["--max-connections-per-backend", "2"]);

  expect(lines.filter((line) => line === "a").length).toBe(2);
  expect(lines.filter((line) => line === "b").length).toBe(2);
  expect(lines.filter((line) => line === "closed").length).toBe(4);
  expect(tinylb.stderr).not.toContain("perThread=");
}, 30_000);
