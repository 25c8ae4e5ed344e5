import type { HealthCondition } from "./backend-health.ts";
import type { BackendIdConflict, BackendSetUnion } from "./backend-set-union.ts";
import type { Server } from "./server.ts";

/** Traffic and origin of one backend id, as `GET /v1/backends` and `tinylb status` show it. */
export interface BackendStatus {
  id: string;
  target: string;
  /** Name of the provider whose entry is in use. */
  provider: string;
  /** Open connections attached to this id. */
  active: number;
  /** Connections attached to this id since start, open or closed. */
  total: number;
  /** Bytes written to the backend, closed and open connections together. */
  bytesToBackend: number;
  /** Bytes written to clients from this backend, closed and open connections together. */
  bytesToClient: number;
  /** Dials to this id that failed or timed out. */
  dialFailures: number;
  /** healthy, unhealthy (a dial back-off or failed probes) or retrying (a back-off ended, no dial succeeded since). */
  health: HealthCondition;
  /** True only while `health` is healthy. */
  healthy: boolean;
  /** Cause of the last change of `health`, or "" before the first one. */
  healthCause: string;
}

/** One provider's share of the union. */
export interface ProviderStatus {
  name: string;
  /** Backends in the provider's latest set (or its saved seed). */
  backends: number;
  /** False while the provider has not published yet, so its saved seed (or nothing) is used. */
  published: boolean;
}

/** The report a running balancer gives about itself. */
export interface BalancerStatus {
  /** Bound listener addresses, with real ports. */
  listeners: string[];
  /** The running backend set, in id order. */
  backends: BackendStatus[];
  conflicts: BackendIdConflict[];
  providers: ProviderStatus[];
  /** True when every backend is unhealthy, so the balancer tries each of them anyway. */
  degraded: boolean;
}

/** Per-id traffic of open connections, added to the counters of closed ones. */
export interface OpenTraffic {
  active: number;
  bytesToBackend: number;
  bytesToClient: number;
}

/**
 * Groups the server's open connections by backend id. An id that left the set can still
 * have open connections when another id shares its target, so the map may hold ids the
 * set does not. Linear in the open connections.
 */
export function openTrafficById(server: Server): Map<string, OpenTraffic> {
  const byId = new Map<string, OpenTraffic>();
  for (const connection of server.pool.connections()) {
    const id = connection.backend.id;
    let traffic = byId.get(id);
    if (traffic === undefined) {
      traffic = { active: 0, bytesToBackend: 0, bytesToClient: 0 };
      byId.set(id, traffic);
    }
    traffic.active++;
    traffic.bytesToBackend += connection.bytesToBackend;
    traffic.bytesToClient += connection.bytesToClient;
  }

  return byId;
}

/** Collects the status of a running balancer. */
export function collectStatus(server: Server, union: BackendSetUnion): BalancerStatus {
  const open = openTrafficById(server);
  const backends = server.set.backends.map((backend): BackendStatus => {
    const counters = server.stats.backend(backend.id);
    const traffic = open.get(backend.id);
    const health = server.health.state(backend.id);

    return {
      id: backend.id,
      target: backend.target,
      provider: union.providerOf(backend.id) ?? "unknown",
      active: traffic?.active ?? 0,
      total: counters.total,
      bytesToBackend: counters.bytesToBackend + (traffic?.bytesToBackend ?? 0),
      bytesToClient: counters.bytesToClient + (traffic?.bytesToClient ?? 0),
      dialFailures: counters.dialFailures,
      health: health?.condition ?? "healthy",
      healthy: health?.healthy ?? true,
      healthCause: health?.cause ?? "",
    };
  });

  return {
    listeners: server.listeners.map((listener) => listener.name),
    backends,
    conflicts: [...union.conflicts],
    providers: union.slots.map((slot) => ({ name: slot.name, backends: slot.set.size, published: slot.published })),
    degraded: server.health.degraded,
  };
}
