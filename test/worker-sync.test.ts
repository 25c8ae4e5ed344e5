/**
 * The admin API responds to a change only once every relay worker applied it. Each round starts a
 * balancer whose relay worker is new, so the worker's code is not yet compiled, while the main
 * thread's is (this process ran the rounds before). Applying a set then takes the worker
 * longer than the main thread. Before the admin API waited, a client that connected right
 * after the response could reach that worker while it still had the empty set, and was closed
 * without a byte: each of 5 runs of this test had 5 to 9 such clients.
 */
import { afterEach, expect, test } from "bun:test";
import { TestBackend, TestClient } from "./support/backends.ts";
import { InProcessBalancer } from "./support/in-process-balancer.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

const ROUNDS = 60;
const CLIENTS = 16;

test("admin change reaches every worker first", async () => {
  const backend = TestBackend.echo("served");
  cleanup.push(() => backend.stop());
  const unserved: string[] = [];

  for (let round = 0; round < ROUNDS; round++) {
    const balancer = await InProcessBalancer.start(["--workers", "2"], { retentionMs: 60_000, maxRetiredIds: 1000, checkIntervalMs: 20 });
    // Stopped in the round, so that the next round's worker is the only one.
    try {
      await balancer.admin("PUT", "/v1/backends", { backends: [{ id: "a", target: backend.target }] });
      const clients = await Promise.all(Array.from({ length: CLIENTS }, () => TestClient.connect(balancer.port)));
      await waitFor("every client to get a greeting or be closed", () => clients.every((client) => client.firstLine !== "" || client.ended || client.closed), 10_000);
      unserved.push(...clients.filter((client) => client.firstLine !== "served").map((client, index) => `round ${round}, client ${index}: ${JSON.stringify(client.received)}`));
      clients.forEach((client) => client.socket.terminate());
    } finally {
      await balancer.stop();
    }
  }

  expect(unserved).toEqual([]);
}, 120_000);
