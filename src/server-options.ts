import type { Address } from "./address.ts";
import type { BalanceMode } from "./backend-selector.ts";
import type { Clock } from "./clock.ts";
import type { CounterRetentionSettings } from "./counter-retention.ts";
import type { HealthCheckSettings, UnhealthyPolicy } from "./health-checker.ts";
import type { Logger } from "./logger.ts";
import type { ProxyProtocolSettings } from "./proxy-protocol.ts";
import type { SlowStartSettings } from "./slow-start-setting.ts";
import type { InheritedSocket } from "./socket-activation.ts";
import type { RemovalPolicy } from "./target-drain.ts";

/** Settings of a server. */
export interface ServerOptions {
  /** Addresses to accept clients on; port 0 lets the kernel pick. */
  listen: Address[];
  /**
   * Milliseconds a backend connect may take before the next backend is tried.
   * @default 3000
   */
  connectTimeoutMs?: number;
  /**
   * Idle milliseconds before TCP keepalive probes start on both sockets; 0 turns keepalive off.
   * @default 30000
   */
  keepaliveMs?: number;
  /**
   * Milliseconds a connection may carry no byte in either direction before it is closed; 0
   * turns the idle timeout off. The flag and config key allow 0 or at least 1000.
   * `Server.setIdleTimeout` changes it later.
   * @default 0
   */
  idleTimeoutMs?: number;
  /**
   * Connections open or dialing at once; a client over the cap is closed at once. 0 means no cap.
   * @default 0
   */
  maxConnections?: number;
  /**
   * Connections open or dialing at once to one backend id; a backend at its cap is skipped. 0 means no cap.
   * @default 0
   */
  maxConnectionsPerBackend?: number;
  /**
   * Balance mode of new clients: `roundrobin`, or `leastconn` for the fewest connections open
   * or dialing per target. `Server.setBalance` changes it later.
   * @default "roundrobin"
   */
  balance?: BalanceMode;
  /**
   * Backends that receive a PROXY protocol header before the client's bytes, and their probes
   * one before the probe's. `Server.setProxyProtocol` changes it later.
   * @default PROXY_PROTOCOL_OFF: no header
   */
  proxyProtocol?: ProxyProtocolSettings;
  /**
   * Slow start windows of backends that return while the server runs (see SlowStart).
   * `Server.setSlowStart` changes them later.
   * @default SLOW_START_OFF: no slow start
   */
  slowStart?: SlowStartSettings;
  /**
   * Threads that share both caps (`--workers`). With more than one, the threads count their
   * connections together for the global cap and, with a per-backend cap, per backend target.
   * @default 1
   */
  threads?: number;
  /**
   * Memory of the counters the threads share (`ThreadCounters.buffer`): the main thread's
   * server creates it when `threads` is above 1, and each relay worker's server gets it.
   * @default new counters when `threads` is above 1
   */
  threadCounters?: SharedArrayBuffer;
  /**
   * This server's thread among `threads`: 0 for the main thread, 1 to `threads` - 1 for relay
   * workers. Connection ids of thread `i` are `i + 1`, `i + 1 + threads`, and so on, so ids are
   * unique over every thread.
   * @default 0
   */
  threadIndex?: number;
  /**
   * Active probes and the dial back-off.
   * @default no probes, and a back-off of 1 s doubling to 30 s
   */
  health?: HealthCheckSettings;
  /**
   * Backends one client tries, in rotation order, before it is closed; 0 means every backend once.
   * @default 0
   */
  maxAttempts?: number;
  /**
   * Open connections of a target that leaves the set: `close` at once, or `drain` (let them
   * finish until `drainTimeoutMs`, then close them).
   * @default "close"
   */
  onRemoval?: RemovalPolicy;
  /**
   * Milliseconds a removed target's connections may take to finish under the `drain` policy.
   * @default 30000
   */
  drainTimeoutMs?: number;
  /**
   * Open connections of a backend that turns unhealthy: `keep` them, or `close` them
   * (except while the balancer is degraded, when closing would cut every backend).
   * @default "keep"
   */
  onUnhealthy?: UnhealthyPolicy;
  /** Time source of health checks and drain deadlines. @default the system clock */
  clock?: Clock;
  /** @default a logger that writes nothing */
  logger?: Logger;
  /**
   * Bind TCP listeners with SO_REUSEPORT, so the relay workers of `--workers` share them.
   * @default false
   */
  reusePort?: boolean;
  /**
   * Sockets the service manager passed (socket activation), each matched to an address of
   * `listen`, which accepts on it instead of binding. Their descriptors belong to the process,
   * so relay workers receive the same list.
   * @default []
   */
  inheritedSockets?: InheritedSocket[];
  /**
   * How many of the admin API and the metrics server run in this process. The descriptor
   * guard holds back their connection caps, so clients cannot take what they may hold.
   * @default 0
   */
  controlServers?: number;
  /**
   * Limits on the traffic counters kept for backend ids that are no longer used (see
   * CounterRetention). Relay workers pass `false`, because they drop an id's counters once
   * they sent them to the main thread.
   * @default DEFAULT_COUNTER_RETENTION: 5 minutes, at most 1,000 ids, checked every second
   */
  counterRetention?: CounterRetentionSettings | false;
  /**
   * Log each backend set change (and an empty set) at info and warn. Relay workers turn it
   * off, because the main thread logs the same change once, with its provider.
   * @default true
   */
  logSetChanges?: boolean;
}

/** Options of one `Server.applySet` call. */
export interface ApplySetOptions {
  /**
   * True when the change comes from a provider's first set, whose backends were serving
   * already, so none of them begins a slow start (see SlowStart.setReplaced).
   * @default false
   */
  discovery?: boolean;
}
