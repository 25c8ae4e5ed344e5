import type { Logger } from "./logger.ts";
import { RateLimitedLog } from "./rate-limited-log.ts";
import type { SharedBackendCounts } from "./shared-backend-counts.ts";

/** Caps on concurrent connections; 0 means no cap. */
export interface ConnectionLimitOptions {
  /**
   * Connections open or dialing at once, over every listener and backend.
   * @default 0 (no cap)
   */
  maxConnections?: number;
  /**
   * Connections open or dialing at once to one backend target. The count is kept per target,
   * not per id: a target's connections that drain after its id moved elsewhere still count
   * for it, and not for the id's new target.
   * @default 0 (no cap)
   */
  maxConnectionsPerBackend?: number;
  /**
   * Threads that share both caps (`--workers`). A thread enforces its share of a cap (see
   * `capPerThread`) where the threads do not count together, and warnings then name the cap as
   * configured and that share.
   * @default 1
   */
  threads?: number;
  /**
   * True when the threads count their open connections together (see ThreadCounters), so
   * every thread enforces the whole global cap against that count.
   * @default false
   */
  globalCountShared?: boolean;
  /**
   * Per-backend counts that the threads share, so every thread enforces the whole
   * per-backend cap against them. A target without a slot falls back to this thread's share.
   */
  sharedBackendCounts?: SharedBackendCounts;
}

/** Returns one thread's share of a connection cap (0, no cap, stays 0). */
export function capPerThread(cap: number, threads: number): number {
  return cap === 0 ? 0 : Math.ceil(cap / threads);
}

/** The cap that a rejected client ran into: the global one or every backend's. */
export type LimitRejection = "global" | "backend";

/**
 * Admission control for connections: a global cap and a cap per backend target.
 *
 * A client over the global cap is closed at once. A backend at its cap is skipped by the
 * rotation; when every backend is at its cap the client is closed at once. Each rejection
 * is counted and logged as a warning at most once per `warnIntervalMs`.
 *
 * Per-backend counts are reservations: `tryReserve` is called before a dial starts, and the
 * caller must call `release` exactly once when that dial fails or the connection closes.
 * They are kept only with a per-backend cap or while leastconn compares them, so that
 * round-robin without a cap counts nothing per connection.
 */
export class ConnectionLimits {
  /** The global cap this thread enforces: the whole cap when the threads share one count, else its share; 0 means no cap. */
  readonly maxConnections: number;
  /** This thread's share of the per-backend cap, for targets without a shared count; 0 means no cap. */
  readonly maxConnectionsPerBackend: number;
  readonly #shared: SharedBackendCounts | undefined;
  /** True while reservations are counted: with a per-backend cap, or while leastconn compares the counts. */
  #counting: boolean;
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
    this.#shared = options.sharedBackendCounts;
    this.#counting = this.#configured.maxConnectionsPerBackend > 0;
    this.#warning = new RateLimitedLog(logger.with({ component: "limits" }), "warn", warnIntervalMs);
  }

  /** The global cap as configured, over every thread; 0 means no cap. */
  get configuredMaxConnections(): number {
    return this.#configured.maxConnections;
  }

  /** The per-backend cap as configured, over every thread; 0 means no cap. */
  get configuredMaxConnectionsPerBackend(): number {
    return this.#configured.maxConnectionsPerBackend;
  }

  /** Returns true when one more client fits under the global cap, given the connections open or dialing now. */
  admits(active: number): boolean {
    return this.maxConnections === 0 || active < this.maxConnections;
  }

  /** Connections open or dialing to the target, in every thread when they share counts; 0 while no thread counts them. */
  count(target: string): number {
    const slot = this.#shared?.slotOf(target);

    return slot === undefined ? (this.#perBackend.get(target) ?? 0) : this.#shared!.count(slot);
  }

  /**
   * Counts a dial to the target against its cap, unless the target is at its cap; returns
   * false then. Without a per-backend cap it never returns false, and it counts nothing while
   * leastconn is off too. Each true must be matched by one `release`.
   */
  tryReserve(target: string): boolean {
    if (!this.#counting) {
      return true;
    }

    const slot = this.#shared?.slotOf(target);
    if (slot !== undefined) {
      return this.#shared!.tryReserve(slot, this.#configured.maxConnectionsPerBackend);
    }
    const count = this.#perBackend.get(target) ?? 0;
    if (this.maxConnectionsPerBackend > 0 && count >= this.maxConnectionsPerBackend) {
      return false;
    }
    this.#perBackend.set(target, count + 1);

    return true;
  }

  /** Gives back a reservation taken with `tryReserve`. */
  release(target: string): void {
    if (!this.#counting) {
      return;
    }

    // Reservations counted in this thread go first: a target that had no shared slot when
    // they were taken may have one now.
    const local = this.#perBackend.get(target);
    if (local !== undefined) {
      if (local === 1) {
        this.#perBackend.delete(target);
      } else {
        this.#perBackend.set(target, local - 1);
      }

      return;
    }
    const slot = this.#shared?.slotOf(target);
    if (slot === undefined || !this.#shared!.release(slot)) {
      throw new Error(`invariant violated: target ${target} released more connections than it reserved`);
    }
  }

  /**
   * Starts counting reservations without a per-backend cap, when leastconn is turned on.
   * `open` names the target of each connection this thread has open or dialing. Each is
   * counted now, because each will be released. Does nothing while counting already.
   */
  startCounting(open: Iterable<string>): void {
    if (this.#counting) {
      return;
    }

    this.#counting = true;
    for (const target of open) {
      // Counting was off, so there is no per-backend cap, and the reservation succeeds.
      this.tryReserve(target);
    }
  }

  /**
   * Stops counting reservations when leastconn is turned off, unless a per-backend cap needs
   * them. `open` names the target of each connection this thread has open or dialing, as for
   * `startCounting`. Their reservations are released now, since no later `release` will count.
   */
  stopCounting(open: Iterable<string>): void {
    if (!this.#counting || this.#configured.maxConnectionsPerBackend > 0) {
      return;
    }

    for (const target of open) {
      this.release(target);
    }
    this.#counting = false;
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
      this.#warning.log("connection limit reached; closing client; raise --max-connections (maxConnections) if tinylb and its backends can take more", { client, maxConnections: this.#configured.maxConnections, ...share });
    } else {
      this.rejectedBackend++;
      this.#warning.log("every backend is at its connection limit; closing client; add backends or raise --max-connections-per-backend (maxConnectionsPerBackend)", {
        client,
        maxConnectionsPerBackend: this.#configured.maxConnectionsPerBackend,
        ...(this.#shared === undefined ? this.#share(this.maxConnectionsPerBackend) : {}),
      });
    }
  }
}
