import type { Address } from "./address.ts";
import type { BalanceMode } from "./backend-selector.ts";
import type { HealthCondition } from "./backend-health.ts";
import type { OpenTraffic } from "./balancer-status.ts";
import type { HistogramCounts } from "./duration-histogram.ts";
import type { LogFormat, LogLevel } from "./logger.ts";
import type { ProxyProtocolSettings } from "./proxy-protocol.ts";
import type { ServerOptions } from "./server.ts";
import type { SlowStartWindow } from "./slow-start.ts";
import type { SlowStartSettings } from "./slow-start-setting.ts";

/** Server settings a relay worker can receive: plain data only, no logger or clock. */
export type WorkerServerOptions = Omit<ServerOptions, "logger" | "clock"> & { listen: Address[] };

/**
 * A backend set for a relay worker. `slots` gives the shared per-backend count of each target
 * that has one (see SharedBackendCounts). `slowStart` has the main thread's slow start windows
 * with the set applied, so that a backend that joined begins its window in every thread at once.
 */
export interface SetCommand {
  type: "set";
  backends: { id: string; target: string }[];
  slots: Record<string, number>;
  slowStart: SlowStartWindow[];
  /** The main thread's health state once its checker tracked this set, which marks the backends that joined pending. */
  health: HealthSnapshot;
}

/** A message from the main thread to a relay worker. */
export type WorkerCommand =
  /**
   * `set` is the backend set the worker applies before it binds, so that no client meets an
   * empty set. `disabled` contains the main thread's disabled ids, which the worker's rotation
   * passes over from its first client on.
   */
  | { type: "start"; index: number; options: WorkerServerOptions; logLevel: LogLevel; logFormat: LogFormat; set: SetCommand; disabled: string[] }
  | SetCommand
  | { type: "health"; snapshot: HealthSnapshot }
  /** The main thread's disabled backend ids, which replace the worker's. */
  | { type: "disabled"; ids: string[] }
  | { type: "close-all"; reason: string }
  /** Closes the connections opened for backend `id` and gives up the dials in flight to it. */
  | { type: "close-backend"; id: string; reason: string }
  | { type: "live-settings"; settings: LiveSettings }
  /** Requests a `synced` reply, sent once the worker has applied every command sent before. */
  | { type: "sync" }
  /** Requests a `stats` event now, which carries `request` back, for a read of the status or the metrics. */
  | { type: "stats-request"; request: number }
  | { type: "shutdown"; graceMs: number };

/** Settings a config reload changes in running relay workers. */
export interface LiveSettings {
  connectTimeoutMs: number;
  keepaliveMs: number;
  /** Idle timeout of open and new connections; 0 is off. */
  idleTimeoutMs: number;
  balance: BalanceMode;
  /** Its Map is copied by the structured clone of `postMessage`. */
  proxyProtocol: ProxyProtocolSettings;
  /** Its Map is copied by the structured clone of `postMessage`. */
  slowStart: SlowStartSettings;
  logLevel: LogLevel;
  logFormat: LogFormat;
}

/** One backend of a HealthSnapshot. */
export interface SnapshotEntry {
  id: string;
  target: string;
  condition: HealthCondition;
  cause: string;
  /** True when dials to the backend failed and none succeeded since, so the worker runs trial dials after the back-off. */
  failing: boolean;
  /** Milliseconds left of the dial back-off when the snapshot was taken, 0 when none runs. */
  backoffLeftMs: number;
}

/** The main thread's health state: every backend that is not healthy, whether the balancer is degraded, and the slow start windows. */
export interface HealthSnapshot {
  backends: SnapshotEntry[];
  degraded: boolean;
  slowStart: SlowStartWindow[];
}

/** A worker's dial result that the main thread's health checker records. */
export type DialResult = { type: "dial-failed"; id: string; target: string; reason: string } | { type: "dial-succeeded"; id: string; target: string };

/** Growth of a worker's traffic counters since its previous delta. */
export interface StatsDelta {
  accepted: number;
  unserved: number;
  /** Connections closed by the idle timeout. */
  idleClosed: number;
  rejectedGlobal: number;
  rejectedBackend: number;
  acceptPauses: number;
  /** Connection durations observed since the previous delta; absent when no connection closed. */
  connectionDuration?: HistogramCounts;
  backends: Record<string, BackendDelta>;
}

/** Growth of one backend id's counters; `connectDuration` is absent when no dial succeeded. */
export interface BackendDelta {
  total: number;
  dialFailures: number;
  bytesToBackend: number;
  bytesToClient: number;
  connectDuration?: HistogramCounts;
}

/** A message from a relay worker to the main thread. */
export type WorkerEvent =
  | { type: "started" }
  | { type: "start-failed"; message: string }
  | DialResult
  /**
   * `open` counts connections open or dialing; `openById` groups the open ones by backend id.
   * `idsInUse` lists the backend ids outside the set with an open connection or a dial in flight.
   * `request` is the number of the `stats-request` that the event replies to, and absent in a periodic delta.
   */
  | { type: "stats"; delta: StatsDelta; open: number; openById: Record<string, OpenTraffic>; idsInUse: string[]; request?: number }
  /** The reply to `close-all` and `close-backend`: how many connections the worker closed. */
  | { type: "closed"; closed: number }
  /** The reply to `sync`. */
  | { type: "synced" }
  | { type: "stopped"; forced: number };
