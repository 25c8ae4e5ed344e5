import type { Logger } from "./logger.ts";
import { RateLimitedLog } from "./rate-limited-log.ts";

/** Caps on concurrent connections; 0 means no cap. */
export interface ConnectionLimitOptions {
  /**
   * Connections open or dialing at once, over every listener and backend.
   * @default 0 (no cap)
   */
  maxConnections?: number;
  /**
   * Connections open or dialing at once to one backend id.
   * @default 0 (no cap)
   */
  maxConnectionsPerBackend?: number;
  /**
   * Threads that share both caps (`--workers`). Each thread enforces its share of each cap
   * (see `capPerThread`), and warnings name the cap as configured and that share.
   * @default 1
   */
  threads?: number;
  /**
   * True when the threads count their open connections together (see ThreadCounters), so
   * every thread enforces the whole global cap against that count. The per-backend cap is
   * still split between the threads.
   * @default false
   */
  globalCountShared?: boolean;
}

/** Returns one thread's share of a connection cap (0, no cap, stays 0). */
export function capPerThread(cap: number, threads: number): number {
  return cap === 0 ? 0 : Math.ceil(cap / threads);
}

/** The cap that a rejected client ran into: the global one or every backend's. */
export type LimitRejection = "global" | "backend";

/**
 * Admission control for connections: a global cap and a cap per backend id.
 *
 * A client over the global cap is closed at once. A backend at its cap is skipped by the
 * rotation; when every backend is at its cap the client is closed at once. Each rejection
 * is counted and logged as a warning at most once per `warnIntervalMs`.
 *
 * Per-backend counts are reservations: `reserve` is called before a dial starts, and the
 * caller must call `release` exactly once when that dial fails or the connection closes.
 */
export class ConnectionLimits {
  /** The global cap this thread enforces: the whole cap when the threads share one count, else its share; 0 means no cap. */
  readonly maxConnections: number;
  /** This thread's share of the per-backend cap; 0 means no cap. */
  readonly maxConnectionsPerBackend: number;
  readonly #configured: { maxConnections: number; maxConnectionsPerBackend: number; threads: number; globalCountShared: boolean };
  /** Clients closed because the global cap was reached. */
  rejectedGlobal = 0;
  /** Clients closed because every backend was at its cap. */
  rejectedBackend = 0;
  readonly #perBackend = new Map<string, number>();
  readonly #warning: RateLimitedLog;

  constructor(options: ConnectionLimitOptions, logger: Logger, warnIntervalMs = 10_000) {
    const threads = options.threads ?? 1;
    const globalCountShared = options.globalCountShared === true;
    this.#configured = { maxConnections: options.maxConnections ?? 0, maxConnectionsPerBackend: options.maxConnectionsPerBackend ?? 0, threads, globalCountShared };
    this.maxConnections = globalCountShared ? this.#configured.maxConnections : capPerThread(this.#configured.maxConnections, threads);
    this.maxConnectionsPerBackend = capPerThread(this.#configured.maxConnectionsPerBackend, threads);
    this.#warning = new RateLimitedLog(logger.with({ component: "limits" }), "warn", warnIntervalMs);
  }

  /** The global cap as configured, over every thread; 0 means no cap. */
  get configuredMaxConnections(): number {
    return this.#configured.maxConnections;
  }

  /** Returns true when one more client fits under the global cap, given the connections open or dialing now. */
  admits(active: number): boolean {
    return this.maxConnections === 0 || active < this.maxConnections;
  }

  /** Returns true when the backend id is below its cap. */
  hasRoom(id: string): boolean {
    return this.maxConnectionsPerBackend === 0 || this.count(id) < this.maxConnectionsPerBackend;
  }

  /** Connections open or dialing to the backend id; always 0 without a per-backend cap. */
  count(id: string): number {
    return this.#perBackend.get(id) ?? 0;
  }

  /** Counts a dial to the backend id against its cap; without a per-backend cap nothing is counted. */
  reserve(id: string): void {
    if (this.maxConnectionsPerBackend === 0) {
      return;
    }

    this.#perBackend.set(id, this.count(id) + 1);
  }

  /** Gives back a reservation taken with `reserve`. */
  release(id: string): void {
    if (this.maxConnectionsPerBackend === 0) {
      return;
    }

    const count = this.count(id) - 1;
    if (count < 0) {
      throw new Error(`invariant violated: backend "${id}" released more connections than it reserved`);
    }
    if (count === 0) {
      this.#perBackend.delete(id);
    } else {
      this.#perBackend.set(id, count);
    }
  }

  /** Returns the log fields that name this thread's share of a cap, when threads share it. */
  #share(share: number): Record<string, number> {
    return this.#configured.threads > 1 ? { perThread: share, threads: this.#configured.threads } : {};
  }

  /** Counts a rejected client and logs a rate-limited warning naming the cap. */
  reject(kind: LimitRejection, client: string): void {
    if (kind === "global") {
      this.rejectedGlobal++;
      const share = this.#configured.globalCountShared ? {} : this.#share(this.maxConnections);
      this.#warning.log("connection limit reached; closing client", { client, maxConnections: this.#configured.maxConnections, ...share });
    } else {
      this.rejectedBackend++;
      this.#warning.log("every backend is at its connection limit; closing client", {
        client,
        maxConnectionsPerBackend: this.#configured.maxConnectionsPerBackend,
        ...this.#share(this.maxConnectionsPerBackend),
      });
    }
  }
}
