import { TestClient } from "./backends.ts";
import { waitFor } from "./wait.ts";

/**
 * Connects `count` clients one after another to a balancer on `where` (a TCP port on 127.0.0.1
 * or a Unix socket path), each held open after its greeting, and adds each to `clients`.
 * Returns the ids of the greeting backends, or "" for a client closed without one. The caller
 * ends the clients, such as with `terminateClients(clients)` in its cleanup.
 */
export async function holdClients(where: number | string, count: number, clients: TestClient[]): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const client = await TestClient.connect(where);
    clients.push(client);
    await waitFor("a greeting", () => client.firstLine !== "" || client.closed);
    ids.push(client.firstLine);
  }

  return ids;
}

/** Closes every client's socket at once. */
export function terminateClients(clients: readonly TestClient[]): void {
  for (const client of clients) {
    client.socket.terminate();
  }
}

/** Counts how often each id occurs. */
export function tally(ids: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const id of ids) {
    counts[id] = (counts[id] ?? 0) + 1;
  }

  return counts;
}
