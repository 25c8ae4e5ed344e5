import { afterEach, expect, test } from "bun:test";
import { createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import { Logger } from "../src/logger.ts";
import { Server } from "../src/server.ts";
import { WorkerPool } from "../src/worker-pool.ts";
import { PeerListener } from "./support/peers.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

/** Clients per test; SO_REUSEPORT hashes each to one of the two threads. */
const CLIENTS = 40;

// WorkerPool.start resolves once the worker accepts, before startRelayWorkers sends it any
// later change, so a client that connects then meets the state the worker started with.
test("worker starts with the disabled ids", async () => {
  const enabled = new PeerListener();
  const disabled = new PeerListener();
  cleanup.push(() => enabled.stop());
  cleanup.push(() => disabled.stop());
  const logger = new Logger({ level: "error", sink: () => {} });
  const server = new Server({ listen: [{ kind: "tcp", host: "127.0.0.1", port: 0 }], threads: 2, reusePort: true, logger });
  server.applySet(new BackendSet([createBackend("a", enabled.target), createBackend("b", disabled.target)]));
  server.disabled.disable("b", "config");
  await server.start();
  cleanup.push(() => server.shutdown(0));

  const listen = server.listeners.map((listener) => listener.address);
  const workers = await WorkerPool.start(1, { listen, threads: 2 }, server, logger);
  cleanup.push(() => workers.shutdown(0));
  const address = listen[0]!;
  const port = address.kind === "tcp" ? address.port : 0;
  const clients = await Promise.all(
    Array.from({ length: CLIENTS }, () => Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {}, error() {} } })),
  );
  cleanup.push(() => clients.forEach((client) => client.terminate()));
  await waitFor("every client to reach a backend", () => enabled.peers.length + disabled.peers.length === CLIENTS);

  expect(disabled.peers.length).toBe(0);
  expect(enabled.peers.length).toBe(CLIENTS);
}, 30_000);
