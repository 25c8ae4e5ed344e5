import type { Backend } from "./backend.ts";
import type { HealthCondition } from "./backend-health.ts";
import type { BalanceMode } from "./backend-selector.ts";
import type { BackendIdConflict, BackendSetUnion, ProviderSlot } from "./backend-set-union.ts";
import type { ProcessStatus } from "./process-status.ts";
import { proxyProtocolOf, type ProxyProtocolMode } from "./proxy-protocol.ts";
import type { Server } from "./server.ts";
import { slowStartOf } from "./slow-start-setting.ts";
import { relayWorkersOf } from "./worker-pool.ts";

/** Traffic and origin of one backend id, as `GET /v1/backends` and `tinylb status` show it. */
export interface BackendStatus {
  id: string;
  target: string;
  /** Name of the provider whose entry is in use. */
  provider: string;
  /** Open connections attached to this id. */
  active: number;
  /**
   * Connections attached to this id since start, open or closed. It counts from 0 again when
   * the id returns after its counters were dropped (see CounterRetention).
   */
  total: number;
  /** Bytes written to the backend, closed and open connections together. */
  bytesToBackend: number;
  /** Bytes written to clients from this backend, closed and open connections together. */
  bytesToClient: number;
  /** Dials to this id that failed or timed out. */
  dialFailures: number;
  /** healthy, unhealthy (a dial back-off or failed probes), retrying (a back-off ended, no dial succeeded since) or pending (joined a running set, no probe result yet). */
  health: HealthCondition;
  /** True only while `health` is healthy. */
  healthy: boolean;
  /** Cause of the last change of `health`, or "" before the first one. */
  healthCause: string;
  /** True when a probe checks this id; without one, `health` follows its dials only. Absent from balancers older than the field. */
  probed?: boolean;
  /** True while an operator has taken the id out of the rotation; its probes still run. */
  disabled: boolean;
  /** PROXY protocol header that new connections and probes of this id send first; absent from balancers older than the setting. */
  proxyProtocol?: ProxyProtocolMode;
  /**
   * Slow start window this id gets when it returns, in milliseconds, or 0 when it gets none:
   * its own `backends[].slowStart` or else the balancer's. Absent from balancers older than it.
   */
  slowStartMs?: number;
  /** Whole milliseconds (rounded up) until the slow start of this id ends, present only during it. */
  slowStartEndsInMs?: number;
  /**
   * Share of a full weight that this id has for new clients during its slow start, from 0.1 up
   * to 1 in hundredths. It is present only during the slow start.
   */
  slowStartWeight?: number;
}

/**
 * An id that left the set while connections opened for it are still open: another id still
 * uses their target, or they drain under the `drain` removal policy.
 */
export interface RemovedBackendStatus {
  id: string;
  /** Target of the open connections; the first one's if they have several. */
  target: string;
  /** Open connections opened for this id. */
  active: number;
  /**
   * Connections attached to this id since start, open or closed. It counts from 0 again when
   * the id returns after its counters were dropped (see CounterRetention).
   */
  total: number;
  bytesToBackend: number;
  bytesToClient: number;
  /** True when an id of the set still uses `target`, so the connections stay open; false while they drain. */
  targetInUse: boolean;
  /**
   * Whole milliseconds (rounded up) until the drain of `target` ends and its open connections are closed, while it drains.
   * Read from the main thread, which keeps a deadline for every removed target when there are relay workers.
   */
  drainEndsInMs?: number;
}

/** One provider's share of the union. */
export interface ProviderStatus {
  name: string;
  /** Backends in the provider's latest set (or its saved seed). */
  backends: number;
  /** False while the provider has not published yet, so its saved seed (or nothing) is used. */
  published: boolean;
  /** For DNS, Kubernetes and etcd: true while its last fetch failed, so its set may be out of date. */
  failing?: boolean;
  /** Failed fetches since the start. */
  failures?: number;
  /** The last fetch's error while failing. */
  lastError?: string;
  /** Milliseconds since the first failure of the current streak. */
  failingForMs?: number;
  /** For Kubernetes and etcd: true while the source lists no usable backend, so the provider keeps its last set. */
  stale?: boolean;
  /** While stale: the time, in ISO 8601 UTC, since which the provider has kept its last set. */
  staleSince?: string;
  /** While stale: the reason the provider keeps its last set. */
  staleReason?: string;
}

/** A listener on a socket that the service manager passed. */
export interface InheritedListenerStatus {
  /** The listen address, as in `listeners`. */
  listener: string;
  /** The descriptor the socket was passed as. */
  fd: number;
  fdName?: string;
}

/** The report a running balancer gives about itself. */
export interface BalancerStatus {
  /** Bound listener addresses, with real ports. */
  listeners: string[];
  /**
   * The listeners that accept on a socket the service manager passed (socket activation),
   * with its descriptor and LISTEN_FDNAMES name. Absent when there is none, and from a
   * balancer that predates socket activation.
   */
  inheritedListeners?: InheritedListenerStatus[];
  /** The running backend set, in id order. */
  backends: BackendStatus[];
  /**
   * Ids no longer in the set that still have open connections, in id order. A connection
   * counts under the id it was opened for until it closes, so the `active` counts of
   * `backends` and `removed` add up to the open connections.
   */
  removed: RemovedBackendStatus[];
  conflicts: BackendIdConflict[];
  providers: ProviderStatus[];
  /** True when the set has an enabled backend and every enabled one is unhealthy, so the balancer tries each of them anyway. */
  degraded: boolean;
  /** Version, pid, uptime, config file and the last config reload; a balancer from before these fields sends none. */
  process?: ProcessStatus;
  /** True once the balancer began to shut down on SIGTERM or SIGINT, so it accepts no new clients. */
  shuttingDown: boolean;
  /** Whole milliseconds (rounded up) until the shutdown closes the connections still open, while it waits for them. */
  shutdownEndsInMs?: number;
  /**
   * Client connections open or dialing a backend, in every thread: the count that
   * `--max-connections` caps. Dialing clients have no backend yet, so the per-backend
   * `active` counts leave them out.
   */
  connections?: number;
  /** The `--max-connections` cap; 0 means no cap. */
  maxConnections?: number;
  /** The `--max-connections-per-backend` cap, which counts per target; 0 means no cap. */
  maxConnectionsPerBackend?: number;
  /** Balance mode of new clients (`--balance`). */
  balance?: BalanceMode;
  /** Milliseconds a connection may carry no byte before it is closed (`--idle-timeout`); 0 is off. */
  idleTimeoutMs?: number;
  /** Slow start window of every backend without one of its own (`--slow-start`), in milliseconds, or 0 while it is off. */
  slowStartMs?: number;
  /** Connections the idle timeout closed, in every thread. */
  idleClosed?: number;
  /**
   * Relay workers, numbered from 1, that did not send their counters within 250 ms of the
   * request, so the counts include their last periodic delta only, up to a second old. Empty
   * when every count is current, and absent without relay workers or from older balancers.
   */
  lateWorkers?: number[];
}

/** Per-id traffic of open connections, added to the counters of closed ones. */
export interface OpenTraffic {
  /** Target of the first open connection of the id. */
  target: string;
  active: number;
  bytesToBackend: number;
  bytesToClient: number;
}

/**
 * Groups the server's open connections by the backend id each was opened for, adding those
 * of its relay workers as of their last counter deltas. An id that left the set can still
 * have open connections when another id shares its target, or while they drain, so the map
 * may hold ids the set does not. Linear in the open connections.
 */
export function openTrafficById(server: Server): Map<string, OpenTraffic> {
  const byId = new Map<string, OpenTraffic>();
  for (const connection of server.pool.connections()) {
    const id = connection.backend.id;
    let traffic = byId.get(id);
    if (traffic === undefined) {
      traffic = { target: connection.target, active: 0, bytesToBackend: 0, bytesToClient: 0 };
      byId.set(id, traffic);
    }
    traffic.active++;
    traffic.bytesToBackend += connection.bytesToBackend;
    traffic.bytesToClient += connection.bytesToClient;
  }
  for (const [id, inWorkers] of relayWorkersOf(server)?.openTrafficById() ?? []) {
    const traffic = byId.get(id);
    if (traffic === undefined) {
      byId.set(id, inWorkers);
      continue;
    }
    traffic.active += inWorkers.active;
    traffic.bytesToBackend += inWorkers.bytesToBackend;
    traffic.bytesToClient += inWorkers.bytesToClient;
  }

  return byId;
}

function providerStatus(slot: ProviderSlot): ProviderStatus {
  const status: ProviderStatus = { name: slot.name, backends: slot.set.size, published: slot.published };
  const health = slot.health;
  if (health === undefined) {
    return status;
  }

  status.failing = health.failing;
  status.failures = health.failures;
  if (health.lastError !== undefined) {
    status.lastError = health.lastError;
  }
  if (health.failingSinceMs !== undefined) {
    status.failingForMs = Math.max(0, Date.now() - health.failingSinceMs);
  }
  status.stale = health.stale;
  if (health.staleSinceMs !== undefined && health.staleReason !== undefined) {
    status.staleSince = new Date(health.staleSinceMs).toISOString();
    status.staleReason = health.staleReason;
  }

  return status;
}

/**
 * Collects the status of a running balancer. `lateWorkers` is the result of
 * `WorkerPool.refreshCounters` just before, if the caller refreshed the workers' counters.
 */
export function collectStatus(server: Server, union: BackendSetUnion, lateWorkers?: number[]): BalancerStatus {
  const open = openTrafficById(server);
  const now = server.slowStart.now();
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
      probed: server.health.isProbed(backend),
      disabled: server.disabled.has(backend.id),
      proxyProtocol: proxyProtocolOf(server.proxyProtocol, backend) ?? "off",
      ...slowStartStatus(server, backend, now),
    };
  });

  const targets = new Set(server.set.backends.map((backend) => backend.target));
  const removed = [...open]
    .filter(([id]) => server.set.get(id) === undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([id, traffic]): RemovedBackendStatus => {
      const counters = server.stats.backend(id);

      return {
        id,
        target: traffic.target,
        active: traffic.active,
        total: counters.total,
        bytesToBackend: counters.bytesToBackend + traffic.bytesToBackend,
        bytesToClient: counters.bytesToClient + traffic.bytesToClient,
        targetInUse: targets.has(traffic.target),
        drainEndsInMs: wholeMs(server.drainRemainingMs(traffic.target)),
      };
    });

  return {
    listeners: server.listeners.map((listener) => listener.name),
    ...inheritedListenerStatus(server),
    backends,
    removed,
    conflicts: [...union.conflicts],
    providers: union.slots.map(providerStatus),
    degraded: server.health.degraded,
    shuttingDown: server.shuttingDown,
    shutdownEndsInMs: wholeMs(server.shutdownRemainingMs),
    connections: server.activeCountInAllThreads,
    maxConnections: server.limits.configuredMaxConnections,
    maxConnectionsPerBackend: server.limits.configuredMaxConnectionsPerBackend,
    balance: server.balance,
    idleTimeoutMs: server.idleTimeoutMs,
    slowStartMs: server.slowStart.settings.durationMs,
    idleClosed: server.stats.idleClosed,
    lateWorkers,
  };
}

/** Returns the `inheritedListeners` field of the status, or nothing when no listener has a passed socket. */
function inheritedListenerStatus(server: Server): Pick<BalancerStatus, "inheritedListeners"> {
  const inherited = server.listeners.flatMap(({ name, inherited }) => (inherited === undefined ? [] : [{ listener: name, fd: inherited.fd, ...(inherited.fdName === undefined ? {} : { fdName: inherited.fdName }) }]));

  return inherited.length === 0 ? {} : { inheritedListeners: inherited };
}

/** Returns the slow start fields of a backend's status: its window, and its progress only during its slow start. */
function slowStartStatus(server: Server, backend: Backend, now: number): Pick<BackendStatus, "slowStartMs" | "slowStartEndsInMs" | "slowStartWeight"> {
  const slowStartMs = slowStartOf(server.slowStart.settings, backend.id);
  const remaining = server.slowStart.remainingMs(backend);
  if (remaining === undefined) {
    return { slowStartMs };
  }

  return { slowStartMs, slowStartEndsInMs: wholeMs(remaining), slowStartWeight: Math.round(server.slowStart.weightOf(backend, now) * 100) / 100 };
}

/** Rounds a remaining time up to whole milliseconds, so 0.4 ms left still reads as 1. */
function wholeMs(ms: number | undefined): number | undefined {
  return ms === undefined ? undefined : Math.ceil(ms);
}
