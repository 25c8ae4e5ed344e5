import { backendIdUsage } from "./backend-id-usage.ts";
import type { HistogramCounts } from "./duration-histogram.ts";
import type { Server } from "./server.ts";
import type { BackendCounters } from "./traffic-stats.ts";
import type { BackendDelta, StatsDelta } from "./worker-messages.ts";

/** A backend id's counters as last sent, with its histogram copied rather than shared. Entries are replaced, never changed. */
interface SentCounters {
  readonly total: number;
  readonly dialFailures: number;
  readonly bytesToBackend: number;
  readonly bytesToClient: number;
  readonly connectDuration: HistogramCounts;
}

/** The sent values of an id whose counters are all zero, shared by every such id. */
const NOTHING_SENT: SentCounters = Object.freeze({ total: 0, dialFailures: 0, bytesToBackend: 0, bytesToClient: 0, connectDuration: Object.freeze({ buckets: [], sum: 0, count: 0 }) });

/**
 * The counters a relay worker last sent to the main thread, from which it takes the next
 * delta. The main thread adds every delta to its own counters, so a delta must hold all growth
 * since the previous one and never be negative.
 */
export class StatsDeltas {
  readonly #sent = {
    accepted: 0,
    unserved: 0,
    idleClosed: 0,
    rejectedGlobal: 0,
    rejectedBackend: 0,
    acceptPauses: 0,
    connectionDuration: undefined as HistogramCounts | undefined,
    backends: new Map<string, SentCounters>(),
  };

  /** Backend ids whose sent values are kept. */
  get backendIds(): number {
    return this.#sent.backends.size;
  }

  /** Returns what the server's counters grew by since the last delta, and records the new values as sent. */
  take(server: Server): StatsDelta {
    const stats = server.stats;
    const sent = this.#sent;
    const delta: StatsDelta = {
      accepted: stats.accepted - sent.accepted,
      unserved: stats.unserved - sent.unserved,
      idleClosed: stats.idleClosed - sent.idleClosed,
      rejectedGlobal: server.limits.rejectedGlobal - sent.rejectedGlobal,
      rejectedBackend: server.limits.rejectedBackend - sent.rejectedBackend,
      acceptPauses: server.acceptPauses - sent.acceptPauses,
      backends: {},
    };
    const connectionDuration = stats.connectionDuration.growthSince(sent.connectionDuration);
    if (connectionDuration !== undefined) {
      delta.connectionDuration = connectionDuration;
      sent.connectionDuration = stats.connectionDuration.counts();
    }
    sent.accepted = stats.accepted;
    sent.unserved = stats.unserved;
    sent.idleClosed = stats.idleClosed;
    sent.rejectedGlobal = server.limits.rejectedGlobal;
    sent.rejectedBackend = server.limits.rejectedBackend;
    sent.acceptPauses = server.acceptPauses;
    for (const id of stats.ids()) {
      const now = stats.backend(id);
      const before = sent.backends.get(id);
      const grown = growthOf(now, before ?? NOTHING_SENT);
      if (grown !== undefined) {
        delta.backends[id] = grown;
        sent.backends.set(id, sentCounters(now));
      } else if (before === undefined) {
        sent.backends.set(id, NOTHING_SENT);
      }
    }

    return delta;
  }

  /**
   * Drops the counters and the sent values of every backend id the server no longer uses (see
   * `backendIdUsage`) and whose counters did not grow since the last `take`. The main
   * thread keeps such ids for scrapes, so the worker no longer needs them. Both are dropped
   * together, so a later connection to the id counts from 0 on both sides and its next delta is
   * exact.
   */
  dropUnused(server: Server): void {
    const stats = server.stats;
    const isUsed = backendIdUsage(server);
    for (const id of stats.ids()) {
      const sent = this.#sent.backends.get(id);
      if (isUsed(id) || sent === undefined || !sameCounters(stats.backend(id), sent)) {
        continue;
      }

      stats.delete(id);
      this.#sent.backends.delete(id);
    }
  }
}

/** Returns what a backend id's counters grew by since they were last sent, or undefined when they did not grow. */
function growthOf(now: BackendCounters, before: SentCounters): BackendDelta | undefined {
  if (sameCounters(now, before)) {
    return undefined;
  }

  const grown: BackendDelta = {
    total: now.total - before.total,
    dialFailures: now.dialFailures - before.dialFailures,
    bytesToBackend: now.bytesToBackend - before.bytesToBackend,
    bytesToClient: now.bytesToClient - before.bytesToClient,
  };
  const connectDuration = now.connectDuration.growthSince(before.connectDuration);
  if (connectDuration !== undefined) {
    grown.connectDuration = connectDuration;
  }

  return grown;
}

function sentCounters(counters: BackendCounters): SentCounters {
  const { total, dialFailures, bytesToBackend, bytesToClient } = counters;

  return { total, dialFailures, bytesToBackend, bytesToClient, connectDuration: counters.connectDuration.counts() };
}

function sameCounters(a: BackendCounters, b: SentCounters): boolean {
  return (
    a.total === b.total &&
    a.dialFailures === b.dialFailures &&
    a.bytesToBackend === b.bytesToBackend &&
    a.bytesToClient === b.bytesToClient &&
    a.connectDuration.count === b.connectDuration.count
  );
}
