import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TestClient } from "./support/backends.ts";
import { listenedPort, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

/** Backends that refuse every dial: each one fails, is marked unhealthy and sends a health change to the workers. */
const BACKENDS = 3000;

/**
 * Writes a config whose backends are on 127.0.1.1 to 127.0.12.250 at `port`, where nothing
 * listens, so every dial is refused at once on loopback.
 */
function writeRefusingConfig(port: number): string {
  const dir = mkdtempSync(join(tmpdir(), "tinylb-mass-failover-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const lines: string[] = [];
  for (let i = 0; i < BACKENDS; i++) {
    const host = `127.0.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`;
    lines.push(`  - { id: x${i}, target: "${host}:${port}" }`);
  }
  const path = join(dir, "tinylb.yaml");
  writeFileSync(path, `listen: 127.0.0.1:0\nbackends:\n${lines.join("\n")}\n`);

  return path;
}

/**
 * Starts dist/tinylb with `workers` threads on `config`, connects one client, and returns the
 * milliseconds until tinylb closes it after failing over through every backend. Then stops
 * tinylb and checks that it exits 0 with no connection closed at the grace deadline.
 */
async function failOverOneClient(config: string, workers: number): Promise<number> {
  const tinylb = TinylbProcess.start(["--config", config, "--workers", String(workers), "--no-watch-config", "--shutdown-grace", "10s"]);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());
  await tinylb.waitForLog("tinylb started", 30_000);
  const port = listenedPort(tinylb.stderr);

  const startedAt = performance.now();
  const client = await TestClient.connect(port);
  cleanup.push(() => client.socket.terminate());
  await waitFor("the client ended after every dial failed", () => client.ended || client.closed, 60_000);
  const elapsedMs = performance.now() - startedAt;

  expect(client.firstLine).toBe("");
  await tinylb.waitForLog(`tried=${BACKENDS}`);
  expect(await tinylb.stop()).toBe(0);
  expect(tinylb.stderr).toContain("closedAtDeadline=0");

  return elapsedMs;
}

test("mass failover with workers matches one thread", async () => {
  // Holding 127.0.0.1:port keeps any wildcard listener off the port that the backends name.
  const holder = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  cleanup.push(() => holder.stop(true));
  const config = writeRefusingConfig(holder.port);

  const oneThreadMs = await failOverOneClient(config, 1);
  const twoThreadsMs = await failOverOneClient(config, 2);
  console.info(`failover over ${BACKENDS} refusing backends: ${Math.round(oneThreadMs)} ms with --workers 1, ${Math.round(twoThreadsMs)} ms with --workers 2`);

  // Loose on purpose, because the machine is shared. Before health snapshots were batched, two
  // threads took 8.4 s here against 0.2 s for one (one run on a 2-core machine), because each
  // failed dial sent every worker a full snapshot.
  expect(twoThreadsMs).toBeLessThan(Math.max(3 * oneThreadMs, 3000));
}, 180_000);
