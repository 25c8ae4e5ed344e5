/**
 * The accept path of the server. Each accepted client is checked against the backend set, the
 * disabled ids and the global connection cap, and then handed to the BackendConnector to dial.
 * The acceptor tracks it until it closes, first among the dialing connections and then in the
 * server's pool.
 *
 * This runs for every client, so the socket handlers, the close handler and the connector's
 * `registered` callback are built once per acceptor, and each step reads the server's parts
 * from fields of its own.
 */
import type { Socket, SocketHandler } from "bun";
import { acceptingListenerName } from "./accepting-listener.ts";
import type { Backend } from "./backend.ts";
import { BackendConnector, type BackendConnectorOptions } from "./backend-connector.ts";
import { type CloseKind, Connection, type ConnectionClosedHandler } from "./connection.ts";
import type { ConnectionLimits } from "./connection-limits.ts";
import type { ConnectionPool } from "./connection-pool.ts";
import { configureSocket } from "./dialer.ts";
import type { DisabledBackends } from "./disabled-backends.ts";
import type { ListenerSet } from "./listener-set.ts";
import type { Logger } from "./logger.ts";
import { RateLimitedLog } from "./rate-limited-log.ts";
import { type SlotAccess, SlotList } from "./slot-list.ts";
import type { RoundRobinSelector } from "./round-robin-selector.ts";
import type { ThreadCounters } from "./thread-counters.ts";
import type { BackendCounters, TrafficStats } from "./traffic-stats.ts";

type ClientSocket = Socket<Connection>;

const DIALING_SLOT: SlotAccess<Connection> = {
  get: (connection) => connection.dialingSlot,
  set: (connection, slot) => {
    connection.dialingSlot = slot;
  },
};

/** The server's parts a ClientAcceptor reads and updates, and the settings of its connector. */
export interface ClientAcceptorOptions {
  pool: ConnectionPool<Connection>;
  stats: TrafficStats;
  limits: ConnectionLimits;
  /** The rotation, whose set decides whether a client can be served at all. */
  selector: RoundRobinSelector;
  disabled: DisabledBackends;
  listeners: ListenerSet<Connection>;
  /** Counters shared with the other relay threads, when there are any. */
  threadCounters: ThreadCounters | undefined;
  /** The server's logger. */
  log: Logger;
  /** Id of the first connection. Ids then step by `threads`, so two relay threads never hand out the same id. */
  firstId: number;
  /** Relay threads of the balancer. */
  threads: number;
  /** Idle milliseconds before TCP keepalive probes start on a client socket that did not inherit keepalive from its listener. */
  keepaliveMs: number;
  /** Settings of the BackendConnector that dials for each client. The acceptor registers its connections and lists the open ones itself. */
  connector: Omit<BackendConnectorOptions, "registered" | "openConnections">;
}

/**
 * Accepts clients, admits them and tracks each from its accept to its close. Open connections
 * live in the server's pool, and those still dialing only here.
 */
export class ClientAcceptor {
  /** Idle milliseconds before TCP keepalive probes start on client sockets accepted from now on. */
  keepaliveMs: number;
  readonly #pool: ConnectionPool<Connection>;
  readonly #stats: TrafficStats;
  readonly #limits: ConnectionLimits;
  readonly #selector: RoundRobinSelector;
  readonly #disabled: DisabledBackends;
  readonly #listeners: ListenerSet<Connection>;
  readonly #threadCounters: ThreadCounters | undefined;
  readonly #threads: number;
  /** A SlotList rather than a Set, so that closed connections are not kept until a full garbage collection. */
  readonly #dialing = new SlotList<Connection>(DIALING_SLOT);
  readonly #connector: BackendConnector;
  readonly #log: Logger;
  readonly #emptySetWarning: RateLimitedLog;
  readonly #allDisabledWarning: RateLimitedLog;
  #nextId: number;
  #idleWaiters: (() => void)[] = [];
  // Built once rather than per connection, because the accept path allocates on every client.
  readonly #onConnectionClosed: ConnectionClosedHandler = (connection, kind, reason) => this.#connectionClosed(connection, kind, reason);

  constructor(options: ClientAcceptorOptions) {
    this.#pool = options.pool;
    this.#stats = options.stats;
    this.#limits = options.limits;
    this.#selector = options.selector;
    this.#disabled = options.disabled;
    this.#listeners = options.listeners;
    this.#threadCounters = options.threadCounters;
    this.#threads = options.threads;
    this.keepaliveMs = options.keepaliveMs;
    this.#nextId = options.firstId;
    this.#log = options.log;
    this.#emptySetWarning = new RateLimitedLog(this.#log, "warn", 10_000);
    this.#allDisabledWarning = new RateLimitedLog(this.#log, "warn", 10_000);
    this.#connector = new BackendConnector({
      ...options.connector,
      registered: (connection, backend, counters) => this.#registered(connection, backend, counters),
      openConnections: () => this.#pool.connections(),
    });
  }

  /** The dial step, built by the acceptor so that a connection whose dial succeeded comes back to it. */
  get connector(): BackendConnector {
    return this.#connector;
  }

  /** Open connections plus those still dialing. */
  get activeCount(): number {
    return this.#pool.size + this.#dialing.size;
  }

  /** Open and dialing connections of every relay thread, from the threads' shared count, or `activeCount` with one thread. */
  get activeCountInAllThreads(): number {
    return this.#threadCounters?.open ?? this.activeCount;
  }

  /** Closes every connection still dialing; returns how many were closed. */
  closeDialing(reason: string): number {
    const dialing = this.#dialing.toArray();
    for (const connection of dialing) {
      connection.close(reason);
    }

    return dialing.length;
  }

  /** Returns the socket handlers of the listeners. */
  clientHandlers(): SocketHandler<Connection> {
    return {
      open: (socket) => this.#accept(socket),
      data: (socket, chunk) => socket.data.clientData(chunk),
      drain: (socket) => socket.data.clientDrain(),
      end: (socket) => socket.data.clientEnd(),
      close: (socket, error) => socket.data?.socketClosed("client", error),
      error: (socket, error) => this.#log.debug("client socket error", { conn: socket.data?.id, err: error }),
    };
  }

  /** Resolves once no connection is open or dialing. */
  whenIdle(): Promise<void> {
    return this.activeCount === 0 ? Promise.resolve() : new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #accept(socket: ClientSocket): void {
    const connection = new Connection(this.#nextId, socket as Socket<unknown>, this.#onConnectionClosed);
    this.#nextId += this.#threads;
    socket.data = connection;
    connection.acceptedAt = performance.now();
    if (this.#log.enabled("debug")) {
      // Debug lines name the client and the listener after the close, when the socket can no longer tell.
      void connection.clientAddress;
      connection.listener = acceptingListenerName(this.#listeners.listeners, socket as Socket<unknown>);
    }
    this.#stats.accepted++;
    // The socket inherits keepalive from its listener, unless that could not be set there.
    if (!this.#listeners.keepaliveInherited) {
      configureSocket(socket, this.keepaliveMs);
    }

    if (this.#selector.set.size === 0) {
      this.#stats.unserved++;
      this.#emptySetWarning.log("backend set is empty; closing client", { conn: connection.id, client: connection.clientAddress });
      connection.close("backend set is empty");

      return;
    }
    if (this.#disabled.coversAll(this.#selector.set)) {
      this.#stats.unserved++;
      this.#allDisabledWarning.log("every backend is disabled; closing client", { conn: connection.id, client: connection.clientAddress });
      connection.close("every backend is disabled");

      return;
    }
    if (!this.#admit()) {
      this.#limits.reject("global", connection.clientAddress);
      connection.close("connection limit reached");

      return;
    }

    this.#dialing.add(connection);
    this.#listeners.guardDescriptors(this.activeCountInAllThreads, connection.acceptedAt);
    this.#connector.connect(connection, connection.acceptedAt);
  }

  /**
   * Returns true when one more connection fits under the global cap, and then counts it in
   * the threads' shared count, if any, until `#connectionClosed` finds it in the dialing
   * connections or the pool.
   */
  #admit(): boolean {
    const counters = this.#threadCounters;

    return counters === undefined ? this.#limits.admits(this.activeCount) : counters.tryOpen(this.#limits.maxConnections);
  }

  #registered(connection: Connection, backend: Backend, counters: BackendCounters): void {
    if (connection.closed) {
      this.#limits.release(backend.target);

      return;
    }

    this.#dialing.delete(connection);
    this.#pool.add(connection);
    counters.total++;
    connection.counters = counters;
    if (this.#log.enabled("debug")) {
      this.#log.debug("connection opened", { ...this.#fields(connection), backendLocal: connection.backendLocalAddress });
    }
  }

  #connectionClosed(connection: Connection, kind: CloseKind, reason: string): void {
    this.#stats.connectionDuration.observe((performance.now() - connection.acceptedAt) / 1000);
    const wasDialing = this.#dialing.delete(connection);
    const wasOpen = this.#pool.delete(connection);
    if (wasDialing || wasOpen) {
      this.#threadCounters?.closed();
    }
    if (wasOpen) {
      this.#limits.release(connection.backend.target);
      this.#stats.recordClosed(connection);
      if (this.#log.enabled("debug")) {
        this.#log.debug("connection closed", this.#closedFields(connection, kind, reason));
      }
    } else if (wasDialing && this.#log.enabled("debug")) {
      this.#log.debug("connection closed while dialing", { conn: connection.id, listener: connection.listener, client: connection.clientAddress, kind, reason });
    }
    if (this.activeCount === 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const wake of waiters) {
        wake();
      }
    }
  }

  /** Fields of the debug line of a closed connection, like HAProxy's `option tcplog`: bytes each way and how long it was open. */
  #closedFields(connection: Connection, kind: CloseKind, reason: string): Record<string, unknown> {
    const durationMs = Math.round(performance.now() - connection.acceptedAt);

    return { ...this.#fields(connection), kind, reason, bytesToBackend: connection.bytesToBackend, bytesToClient: connection.bytesToClient, durationMs };
  }

  #fields(connection: Connection): Record<string, unknown> {
    const backend: Backend = connection.backend;

    return { conn: connection.id, listener: connection.listener, client: connection.clientAddress, backend: backend.id, target: backend.target };
  }
}
