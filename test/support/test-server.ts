import { expect } from "bun:test";
import { createBackend } from "../../src/backend.ts";
import { BackendSet } from "../../src/backend-set.ts";
import { Server, type ServerOptions } from "../../src/server.ts";
import { LogLines } from "./log-lines.ts";

/** Builds a backend set from anything with an id and a target, such as test backends. */
export function setOf(backends: { id: string; target: string }[]): BackendSet {
  return new BackendSet(backends.map((backend) => createBackend(backend.id, backend.target)));
}

/**
 * Starts a Server on 127.0.0.1 with a kernel-chosen port, serving `set` and collecting its
 * log lines. Its shutdown goes onto `cleanup` and then checks that no connection stayed open.
 */
export async function startLoggedServer(
  set: BackendSet,
  options: Partial<ServerOptions>,
  cleanup: (() => unknown)[],
): Promise<{ server: Server; port: number; logs: LogLines }> {
  const logs = new LogLines();
  const server = new Server({ listen: [{ kind: "tcp", host: "127.0.0.1", port: 0 }], logger: logs.logger, ...options });
  server.applySet(set);
  await server.start();
  cleanup.push(async () => {
    await server.shutdown(0);
    expect(server.activeCount).toBe(0);
  });
  const address = server.listeners[0]!.address;

  return { server, port: address.kind === "tcp" ? address.port : 0, logs };
}
