import type { Server } from "./server.ts";
import { relayWorkersOf } from "./worker-pool.ts";

/**
 * Returns a test of whether a backend id is used: in the set, or with an open connection or a
 * dial in flight in the server's thread or, as of their last counter deltas, in a relay
 * worker. The traffic counters of an id that is not used are retired (see CounterRetention).
 * The test reads the thread's connections once, at the first id outside the set, so build
 * one per round of checks.
 */
export function backendIdUsage(server: Server): (id: string) => boolean {
  let local: Set<string> | undefined;
  const workers = relayWorkersOf(server);

  return (id) => {
    if (server.set.get(id) !== undefined) {
      return true;
    }
    local ??= backendIdsInUse(server);

    return local.has(id) || (workers?.usesBackendId(id) ?? false);
  };
}

/**
 * Returns the backend ids outside the set with an open connection or a dial in flight in the
 * server's thread. It reads the connections only when the counters hold an id outside the set.
 */
export function backendIdsInUseOutsideSet(server: Server): string[] {
  const outside = (id: string): boolean => server.set.get(id) === undefined;
  if (!server.stats.ids().some(outside)) {
    return [];
  }

  return [...backendIdsInUse(server)].filter(outside);
}

function backendIdsInUse(server: Server): Set<string> {
  const ids = new Set(server.dialingBackendIds());
  for (const connection of server.pool.connections()) {
    ids.add(connection.backend.id);
  }

  return ids;
}
