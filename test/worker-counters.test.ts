/**
 * `GET /v1/backends` and `/metrics` collect a fresh counter delta from every relay worker
 * before they respond, so connections that a worker opened a moment ago are counted at once,
 * not with its next periodic delta up to a second later.
 */
import { afterEach, expect, test } from "bun:test";
import type { BalancerStatus } from "../src/balancer-status.ts";
import { TestBackend, TestClient } from "./support/backends.ts";
import { InProcessBalancer } from "./support/in-process-balancer.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

/** Enough clients that each of the 3 threads gets some: all miss one thread with a chance of about 3 * (2/3)^40, 2e-7. */
const CLIENTS = 40;
/** Rounds, each with new connections, so that a round that meets a periodic delta by chance does not hide a lag. */
const ROUNDS = 5;

test("status and metrics count worker connections at once", async () => {
  const backends = [TestBackend.echo("a"), TestBackend.echo("b")];
  cleanup.push(() => backends.forEach((backend) => backend.stop()));
  // The main thread and 2 relay workers.
  const balancer = await InProcessBalancer.start(["--workers", "3"], { retentionMs: 60_000, maxRetiredIds: 1000, checkIntervalMs: 1000 });
  cleanup.push(() => balancer.stop());
  await balancer.admin("PUT", "/v1/backends", { backends: backends.map((backend, index) => ({ id: `b${index}`, target: backend.target })) });

  const clients: TestClient[] = [];
  cleanup.push(() => clients.forEach((client) => client.socket.terminate()));
  for (let round = 1; round <= ROUNDS; round++) {
    const opened = await Promise.all(Array.from({ length: CLIENTS }, () => TestClient.connect(balancer.port)));
    clients.push(...opened);
    // A greeting proves that the thread that accepted the client has connected its backend.
    await waitFor("every client's greeting", () => opened.every((client) => client.firstLine !== ""), 10_000);

    const status = (await (await balancer.admin("GET", "/v1/backends")).json()) as BalancerStatus;
    const metrics = await balancer.backendSamples("tinylb_backend_connections_active");

    const expected = round * CLIENTS;
    expect(status.backends.reduce((sum, backend) => sum + backend.active, 0)).toBe(expected);
    expect(status.backends.reduce((sum, backend) => sum + backend.total, 0)).toBe(expected);
    expect(status.connections).toBe(expected);
    expect(status.lateWorkers).toEqual([]);
    expect((metrics.get("b0") ?? 0) + (metrics.get("b1") ?? 0)).toBe(expected);
  }

  // The relay workers, not only the main thread, hold some of the connections.
  expect(balancer.server.activeCount).toBeLessThan(ROUNDS * CLIENTS);
}, 60_000);
