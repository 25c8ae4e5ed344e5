import type { Connection } from "./connection.ts";
import { CONNECT_BUCKETS, CONNECTION_BUCKETS, DurationHistogram } from "./duration-histogram.ts";

/** Counters of one backend id. Byte counts cover closed connections only; open ones are added on read. */
export interface BackendCounters {
  /** Connections accepted and attached to this backend. */
  total: number;
  /** Dials to this backend that failed or timed out. */
  dialFailures: number;
  bytesToBackend: number;
  bytesToClient: number;
  /** Seconds from the start of each successful dial to its connected socket. */
  connectDuration: DurationHistogram;
}

/**
 * Traffic counters of one balancer per backend id, kept across set changes. The counters of
 * an id that is no longer used are dropped by CounterRetention in the main thread, and by
 * StatsDeltas in a relay worker.
 */
export class TrafficStats {
  /** Clients accepted on every listener. */
  accepted = 0;
  /** Clients closed without a backend: empty set, every dial failed, or every backend cooling down after a failed dial. */
  unserved = 0;
  /** Effective backend set changes applied. */
  setChanges = 0;
  /** Connections closed by the idle timeout. */
  idleClosed = 0;
  /** Seconds from the accept of each client to its close, whether a backend served it or not. */
  readonly connectionDuration = new DurationHistogram(CONNECTION_BUCKETS);
  readonly #byId = new Map<string, BackendCounters>();

  /** Returns the counters of a backend id, creating them at zero. */
  backend(id: string): BackendCounters {
    let counters = this.#byId.get(id);
    if (counters === undefined) {
      counters = { total: 0, dialFailures: 0, bytesToBackend: 0, bytesToClient: 0, connectDuration: new DurationHistogram(CONNECT_BUCKETS) };
      this.#byId.set(id, counters);
    }

    return counters;
  }

  /** Adds a closed connection's bytes to its backend's counters. */
  recordClosed(connection: Connection): void {
    const counters = connection.counters ?? this.backend(connection.backend.id);
    counters.bytesToBackend += connection.bytesToBackend;
    counters.bytesToClient += connection.bytesToClient;
  }

  /** Ids with counters, including backends that left the set. */
  ids(): string[] {
    return [...this.#byId.keys()];
  }

  /** Drops the counters of a backend id; a later `backend(id)` starts them at zero. Returns false when it had none. */
  delete(id: string): boolean {
    return this.#byId.delete(id);
  }
}
