import type { Backend } from "./backend.ts";
import type { Connection } from "./connection.ts";
import type { ConnectionLimits } from "./connection-limits.ts";
import { DialError, type DialOptions, dialBackend } from "./dialer.ts";
import { type FailoverChecks, FailoverPlan } from "./failover-plan.ts";
import type { HealthChecker } from "./health-checker.ts";
import type { Logger } from "./logger.ts";
import type { RoundRobinSelector } from "./round-robin-selector.ts";
import type { TrafficStats } from "./traffic-stats.ts";

/** The server's parts a BackendConnector reads and updates, and its dial settings. */
export interface BackendConnectorOptions {
  /** The rotation. A dial whose target left the rotation's current set is abandoned. */
  selector: RoundRobinSelector;
  /** Per-backend caps. Each dial reserves one connection, released when the dial fails or the connection closes. */
  limits: ConnectionLimits;
  /** Health state, which records every dial's result and puts unhealthy backends last in the failover order. */
  health: HealthChecker;
  /** Traffic counters, for dial failures and clients no backend served. */
  stats: TrafficStats;
  /** The server's logger. */
  log: Logger;
  /** Backends one client tries, in rotation order, before it is closed. 0 means every backend once. */
  maxAttempts: number;
  /** Milliseconds a backend connect may take before the next backend is tried. */
  connectTimeoutMs: number;
  /** Idle milliseconds before TCP keepalive probes start on the backend socket; 0 turns keepalive off. */
  keepaliveMs: number;
  /**
   * Registers a connection whose dial succeeded, called before `connect` returns. It must
   * release the backend's reservation itself when the client closed during the dial.
   */
  registered: (connection: Connection, backend: Backend) => void;
}

/**
 * The dial step of the accept path: tries backends for one client in failover order until one
 * connects, and closes the client when none does.
 */
export class BackendConnector {
  readonly #selector: RoundRobinSelector;
  readonly #limits: ConnectionLimits;
  readonly #health: HealthChecker;
  readonly #stats: TrafficStats;
  readonly #log: Logger;
  readonly #maxAttempts: number;
  readonly #registered: (connection: Connection, backend: Backend) => void;
  // Built once rather than per connection, because the accept path allocates on every client.
  readonly #failoverChecks: FailoverChecks = {
    hasRoom: (candidate) => this.#limits.hasRoom(candidate.id),
    isHealthy: (candidate) => this.#health.isHealthy(candidate),
  };
  readonly #dialOptions: DialOptions;

  constructor(options: BackendConnectorOptions) {
    this.#selector = options.selector;
    this.#limits = options.limits;
    this.#health = options.health;
    this.#stats = options.stats;
    this.#log = options.log;
    this.#maxAttempts = options.maxAttempts;
    this.#registered = options.registered;
    this.#dialOptions = {
      connectTimeoutMs: options.connectTimeoutMs,
      keepaliveMs: options.keepaliveMs,
      isCurrent: (candidate) => this.#selector.set.hasTarget(candidate.target),
    };
  }

  /** Sets the connect timeout and keepalive time of dials started from now on. Dials in flight keep the old values. */
  updateTimeouts(timeouts: { connectTimeoutMs: number; keepaliveMs: number }): void {
    this.#dialOptions.connectTimeoutMs = timeouts.connectTimeoutMs;
    this.#dialOptions.keepaliveMs = timeouts.keepaliveMs;
  }

  /**
   * Dials backends until one connects: healthy ones first, in rotation order, then the
   * unhealthy ones, each at most once and at most `maxAttempts` in all (see FailoverPlan).
   */
  async connect(connection: Connection): Promise<void> {
    const plan = new FailoverPlan(this.#selector, this.#failoverChecks, this.#maxAttempts);
    let backend = plan.first();
    while (backend !== undefined) {
      this.#limits.reserve(backend.id);
      try {
        await dialBackend(connection, backend, this.#dialOptions);
        this.#health.dialSucceeded(backend);
        this.#registered(connection, backend);

        return;
      } catch (error) {
        this.#limits.release(backend.id);
        if (!(error instanceof DialError)) {
          throw error;
        }
        this.#stats.backend(backend.id).dialFailures++;
        this.#health.dialFailed(backend, error.message);
        if (connection.closed) {
          return;
        }
        this.#log.warn(error.message, { conn: connection.id, client: connection.clientAddress, backend: backend.id, target: backend.target });
      }
      backend = plan.next(backend);
    }

    if (plan.attempts === 0) {
      this.#limits.reject("backend", connection.clientAddress);
      connection.close("every backend is at its connection limit");

      return;
    }

    this.#stats.unserved++;
    this.#log.error("no backend could be dialled; closing client", { conn: connection.id, client: connection.clientAddress, tried: plan.attempts });
    connection.close("every backend failed");
  }
}
