import { afterEach, expect, test } from "bun:test";
import { TestBackend, TestClient } from "./support/backends.ts";
import { listenedPort, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

/** Long-lived clients; SO_REUSEPORT hashes each to one of the three threads. */
const CLIENTS = 30;

for (const workers of ["3", "1"]) {
  test(`second SIGTERM with --workers ${workers} counts every connection`, async () => {
    const backend = TestBackend.echo("a");
    cleanup.push(() => backend.stop());
    const tinylb = TinylbProcess.start(["--listen", "127.0.0.1:0", "--backend", `a=${backend.target}`, "--workers", workers, "--shutdown-grace", "30s", "--log-level", "debug"]);
    cleanup.push(() => tinylb[Symbol.asyncDispose]());
    await tinylb.waitForLog("tinylb started");
    const port = listenedPort(tinylb.stderr);

    const clients: TestClient[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      clients.push(await TestClient.connect(port));
    }
    cleanup.push(() => clients.forEach((client) => client.socket.terminate()));
    await waitFor("every greeting", () => clients.every((client) => client.firstLine === "a"));

    tinylb.signal("SIGTERM");
    await tinylb.waitForLog("SIGTERM received; draining");
    tinylb.signal("SIGTERM");

    expect(await tinylb.process.exited).toBe(0);
    await waitFor("every client closed", () => clients.every((client) => client.closed));
    await tinylb.waitForLog("tinylb stopped");
    const closedLine = tinylb.stderr.split("\n").find((line) => line.includes("SIGTERM received again"));
    expect(closedLine).toContain(`closed=${CLIENTS}`);
    // With three threads, the clients must have reached more than the main thread.
    if (workers === "3") {
      const opened = tinylb.stderr.split("\n").filter((line) => line.includes("connection opened"));
      expect(opened.filter((line) => line.includes("worker=")).length).toBeGreaterThan(0);
    }
  }, 30_000);
}
