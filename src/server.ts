import type { Socket, SocketHandler } from "bun";
import type { Backend } from "./backend.ts";
import { BackendConnector } from "./backend-connector.ts";
import type { BalanceMode } from "./backend-selector.ts";
import { backendIdUsage } from "./backend-id-usage.ts";
import { BackendSet } from "./backend-set.ts";
import { systemClock } from "./clock.ts";
import { type CloseKind, Connection, type ConnectionClosedHandler } from "./connection.ts";
import { CounterRetention, DEFAULT_COUNTER_RETENTION } from "./counter-retention.ts";
import { ConnectionPool } from "./connection-pool.ts";
import { ConnectionLimits } from "./connection-limits.ts";
import { configureSocket } from "./dialer.ts";
import { HealthChecker } from "./health-checker.ts";
import { describeSetChange } from "./backend-set-log.ts";
import { DisabledBackends } from "./disabled-backends.ts";
import { LeastConnectionsSelector } from "./least-connections-selector.ts";
import type { BoundListener } from "./listener.ts";
import { ListenerSet } from "./listener-set.ts";
import { type LogFields, Logger, silentLogger } from "./logger.ts";
import { RateLimitedLog } from "./rate-limited-log.ts";
import { RoundRobinSelector } from "./round-robin-selector.ts";
import { RemovalPolicies } from "./removal-policies.ts";
import type { ServerOptions } from "./server-options.ts";
import { ThreadCounters } from "./thread-counters.ts";
import { TrafficStats } from "./traffic-stats.ts";

export type { ServerOptions } from "./server-options.ts";

type ClientSocket = Socket<Connection>;

/**
 * The balancer: accepts clients, picks a backend (round-robin, or the least loaded under
 * leastconn), dials it, registers the pair in the pool and relays bytes both ways.
 *
 * `applySet` swaps the backend set first. It then closes the connections of every target
 * that left it, or under the `drain` removal policy lets them finish until a deadline.
 * Connections to targets that stay are never touched.
 *
 * The rotation passes over the ids in `disabled`, and their dials in flight are given up.
 * Their open connections stay until `closeBackendConnections` closes them.
 */
export class Server {
  readonly pool = new ConnectionPool<Connection>();
  readonly stats = new TrafficStats();
  /** Connection caps and the count of clients they rejected. */
  readonly limits: ConnectionLimits;
  /** Health of every backend of the set, for status pages; the rotation skips unhealthy ones. */
  readonly health: HealthChecker;
  readonly #removals: RemovalPolicies;
  /** Backend ids taken out of the rotation; ids that leave the set are forgotten. */
  readonly disabled: DisabledBackends;
  /** Counters shared with the other relay threads, when there are any (`--workers`). */
  readonly threadCounters: ThreadCounters | undefined;
  readonly #selector: RoundRobinSelector;
  #balance: BalanceMode = "roundrobin";
  readonly #dialing = new Set<Connection>();
  readonly #options: Required<Omit<ServerOptions, "threadCounters" | "balance">>;
  readonly #log: Logger;
  readonly #emptySetWarning: RateLimitedLog;
  readonly #allDisabledWarning: RateLimitedLog;
  readonly #listeners: ListenerSet<Connection>;
  #nextId: number;
  #shuttingDown = false;
  /** Clock time at which `shutdown` closes the connections still open, while it waits. */
  #shutdownDeadline: number | undefined;
  #idleWaiters: (() => void)[] = [];
  readonly #setListeners: ((set: BackendSet) => void)[] = [];
  // Built once rather than per connection, because the accept path allocates on every client.
  readonly #onConnectionClosed: ConnectionClosedHandler = (connection, kind, reason) => this.#connectionClosed(connection, kind, reason);
  readonly #connector: BackendConnector;
  readonly #retention: CounterRetention | undefined;

  /**
   * @param health replaces the checker built from `options.health`, such as a relay worker's
   *   copy of the main thread's health state.
   */
  constructor(options: ServerOptions, health?: HealthChecker) {
    this.#options = { connectTimeoutMs: 3000, keepaliveMs: 30_000, maxConnections: 0, maxConnectionsPerBackend: 0, threads: 1, health: {}, maxAttempts: 0, onRemoval: "close", drainTimeoutMs: 30_000, onUnhealthy: "keep", clock: systemClock, logger: silentLogger, reusePort: false, logSetChanges: true, threadIndex: 0, counterRetention: DEFAULT_COUNTER_RETENTION, ...options };
    this.#nextId = this.#options.threadIndex + 1;
    this.#log = this.#options.logger.with({ component: "server" });
    this.#emptySetWarning = new RateLimitedLog(this.#log, "warn", 10_000);
    this.disabled = new DisabledBackends(this.#log, this.#options.logSetChanges);
    this.#allDisabledWarning = new RateLimitedLog(this.#log, "warn", 10_000);
    this.#listeners = new ListenerSet(this.#log, this.#options.reusePort);
    this.#listeners.setKeepAlive(this.#options.keepaliveMs);
    // Several threads always share per-target counts, so that a reload can turn leastconn on.
    this.threadCounters = this.#options.threads > 1 ? new ThreadCounters(options.threadCounters, true) : undefined;
    this.#selector = new RoundRobinSelector(BackendSet.EMPTY, this.threadCounters, this.disabled);
    this.limits = new ConnectionLimits(
      { ...this.#options, globalCountShared: this.threadCounters !== undefined, sharedBackendCounts: this.threadCounters?.backendCounts },
      this.#options.logger,
    );
    this.health = health ?? new HealthChecker({ ...this.#options.health, clock: this.#options.clock, logger: this.#options.logger });
    this.#removals = new RemovalPolicies(this.pool, this.health, this.#log, this.#options.clock, this.#options);
    this.health.onFlip((backend, healthy) => this.#removals.healthFlipped(backend, healthy));
    this.health.setDisabled(this.disabled);
    this.disabled.onChange(() => {
      this.health.setDisabled(this.disabled);
      // A client still dialing a backend that was just disabled has not been served yet, so it
      // moves on to an enabled one rather than wait for a connect that may hang.
      this.#connector.abandonDisabledDials(this.disabled);
    });
    this.#connector = new BackendConnector({
      selector: this.#selector,
      limits: this.limits,
      health: this.health,
      stats: this.stats,
      log: this.#log,
      clock: this.#options.clock,
      maxAttempts: this.#options.maxAttempts,
      connectTimeoutMs: this.#options.connectTimeoutMs,
      keepaliveMs: this.#options.keepaliveMs,
      registered: (connection, backend) => this.#registered(connection, backend),
    });
    this.#useBalance(options.balance ?? "roundrobin");
    const retention = this.#options.counterRetention;
    if (retention !== false) {
      this.#retention = new CounterRetention(this.stats, () => backendIdUsage(this), retention, this.#options.clock, this.#log);
    }
  }

  /**
   * Sets the connect timeout and keepalive time for connections accepted and dials started
   * from now on; open connections and dials in flight keep the old values.
   */
  updateTimeouts(timeouts: { connectTimeoutMs: number; keepaliveMs: number }): void {
    this.#options.connectTimeoutMs = timeouts.connectTimeoutMs;
    this.#options.keepaliveMs = timeouts.keepaliveMs;
    this.#listeners.setKeepAlive(timeouts.keepaliveMs);
    this.#connector.updateTimeouts(timeouts);
  }

  /** Balance mode of new clients. */
  get balance(): BalanceMode {
    return this.#balance;
  }

  /**
   * Sets the balance mode of clients accepted from now on. A client failing over keeps the
   * order it started with. Turning leastconn on counts this thread's open and dialing
   * connections per target, and turning it off releases them again, so that the shared
   * counts stay exact (see ConnectionLimits.startCounting).
   */
  setBalance(mode: BalanceMode): void {
    // A shutdown stops the connector, which then no longer lists the dials still in flight,
    // so their reservations could not be counted or released here.
    if (mode === this.#balance || this.#shuttingDown) {
      return;
    }

    const open = this.#useBalance(mode);
    this.#log.debug("balance mode changed", { balance: mode, open });
  }

  /** Switches the selector and the per-target counts to `mode`. Returns how many connections this thread has open or dialing. */
  #useBalance(mode: BalanceMode): number {
    const open = this.#openTargets();
    if (mode === "leastconn") {
      this.limits.startCounting(open);
      this.#connector.useSelector(new LeastConnectionsSelector(this.#selector, this.limits));
    } else {
      this.limits.stopCounting(open);
      this.#connector.useSelector(this.#selector);
    }
    this.#balance = mode;

    return open.length;
  }

  /** Returns the target of each of this thread's open connections and dials in flight. */
  #openTargets(): string[] {
    const targets = Array.from(this.pool.connections(), (connection) => connection.target);
    for (const backend of this.#connector.dialingBackends()) {
      targets.push(backend.target);
    }

    return targets;
  }

  /** Calls `listener` with every backend set `applySet` swaps in, before it closes removed targets. */
  onSetApplied(listener: (set: BackendSet) => void): void {
    this.#setListeners.push(listener);
  }

  /** The backend set in use. */
  get set(): BackendSet {
    return this.#selector.set;
  }

  /** Bound listeners, with the real ports. */
  get listeners(): readonly BoundListener[] {
    return this.#listeners.listeners;
  }

  /** Open connections plus those still dialing. */
  get activeCount(): number {
    return this.pool.size + this.#dialing.size;
  }

  /**
   * Open and dialing connections of every relay thread, from the threads' shared count, or
   * `activeCount` with one thread. Exact, unlike the workers' counter deltas, which are up to
   * a second old.
   */
  get activeCountInAllThreads(): number {
    return this.threadCounters?.open ?? this.activeCount;
  }

  /**
   * Binds every listener. On a failure the listeners bound so far are stopped.
   *
   * @throws {ListenError} naming the address that could not be bound.
   */
  async start(): Promise<void> {
    await this.#listeners.bind(this.#options.listen, this.#clientHandlers());
    this.#retention?.start();
  }

  /** Returns the backend ids of this thread's dials in flight. */
  dialingBackendIds(): string[] {
    return this.#connector.dialingBackendIds();
  }

  /**
   * Replaces the backend set: swap first, then close (or drain, under the `drain` removal
   * policy) every connection whose target the new set no longer dials. Returns false, and
   * touches nothing, when the set is unchanged.
   * `fields` are added to the change's log line, such as the provider that caused it.
   */
  applySet(set: BackendSet, fields: LogFields = {}): boolean {
    const previous = this.#selector.set;
    if (set.equals(previous)) {
      return false;
    }

    // In the main thread, every target gets its shared per-backend count before a client can reach it.
    this.threadCounters?.backendCounts?.assign(set.targets);
    this.#selector.update(set);
    for (const listener of this.#setListeners) {
      listener(set);
    }
    this.health.update(set);
    this.stats.setChanges++;
    if (!this.#options.logSetChanges) {
      this.#log.debug("backend set changed", describeSetChange(previous, set));
    } else {
      this.#log.info("backend set changed", { ...fields, ...describeSetChange(previous, set) });
      if (set.size === 0) {
        this.#log.warn("backend set is empty; clients will be closed until a backend is added");
      }
    }

    this.disabled.setReplaced(set);
    this.#removals.setReplaced(previous, set);
    this.#connector.setChanged();

    return true;
  }

  /**
   * Closes the open connections opened for backend `id` and gives up the dials in flight to
   * it, whose clients fail over to the next enabled backend. Connections of other ids with
   * the same target stay. Returns how many connections were closed. Linear in the open
   * connections.
   */
  closeBackendConnections(id: string, reason: string): number {
    this.#connector.abandonDialsTo(id);

    return this.pool.closeWhere((connection) => connection.backend.id === id, reason);
  }

  /** Stops accepting new clients; open connections carry on. */
  stopListening(): void {
    this.#listeners.stop();
  }

  /** True from the moment `shutdown` starts: the balancer accepts no new clients and drains. */
  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /** Milliseconds until a shutdown closes the connections still open, or undefined when none waits for them. */
  get shutdownRemainingMs(): number | undefined {
    return this.#shutdownDeadline === undefined ? undefined : Math.max(0, this.#shutdownDeadline - this.#options.clock.now());
  }

  /** True while the listeners are stopped because the descriptor limit is nearly reached. */
  get acceptPaused(): boolean {
    return this.#listeners.acceptPaused;
  }

  /** Times the listeners were stopped because the descriptor limit was nearly reached. */
  get acceptPauses(): number {
    return this.#listeners.acceptPauses;
  }

  /** Milliseconds until this thread's drain of a removed `target` ends, or undefined when it is not draining. */
  drainRemainingMs(target: string): number | undefined {
    return this.#removals.drainRemainingMs(target);
  }

  /**
   * Stops accepting, waits up to `graceMs` for open connections to finish, then closes
   * the rest. Returns how many connections were closed by force.
   */
  async shutdown(graceMs: number): Promise<number> {
    this.#shuttingDown = true;
    this.stopListening();
    if (this.activeCount > 0 && graceMs > 0) {
      this.#log.info("waiting for open connections to finish", { open: this.activeCount, graceMs });
      this.#shutdownDeadline = this.#options.clock.now() + graceMs;
      await Promise.race([this.#whenIdle(), Bun.sleep(graceMs)]);
      this.#shutdownDeadline = undefined;
    }

    this.health.stop();
    this.#connector.stop();
    this.#retention?.stop();

    return this.closeAll("balancer shutting down");
  }

  /** Closes every open and dialing connection at once; returns how many were closed. */
  closeAll(reason: string): number {
    this.#removals.cancelDrains();
    const dialing = [...this.#dialing];
    for (const connection of dialing) {
      connection.close(reason);
    }

    return dialing.length + this.pool.closeAll(reason);
  }

  #clientHandlers(): SocketHandler<Connection> {
    return {
      open: (socket) => this.#accept(socket),
      data: (socket, chunk) => socket.data.clientData(chunk),
      drain: (socket) => socket.data.clientDrain(),
      end: (socket) => socket.data.clientEnd(),
      close: (socket, error) => socket.data?.socketClosed("client", error),
      error: (socket, error) => this.#log.debug("client socket error", { conn: socket.data?.id, err: error }),
    };
  }

  #accept(socket: ClientSocket): void {
    const connection = new Connection(this.#nextId, socket as Socket<unknown>, this.#onConnectionClosed);
    this.#nextId += this.#options.threads;
    socket.data = connection;
    if (this.#log.enabled("debug")) {
      // Debug lines name the client after the close, when the socket can no longer tell.
      void connection.clientAddress;
    }
    this.stats.accepted++;
    // The socket inherits keepalive from its listener, unless that could not be set there.
    if (!this.#listeners.keepaliveInherited) {
      configureSocket(socket, this.#options.keepaliveMs);
    }

    if (this.#selector.set.size === 0) {
      this.stats.unserved++;
      this.#emptySetWarning.log("backend set is empty; closing client", { conn: connection.id, client: connection.clientAddress });
      connection.close("backend set is empty");

      return;
    }
    if (this.disabled.coversAll(this.#selector.set)) {
      this.stats.unserved++;
      this.#allDisabledWarning.log("every backend is disabled; closing client", { conn: connection.id, client: connection.clientAddress });
      connection.close("every backend is disabled");

      return;
    }
    if (!this.#admit()) {
      this.limits.reject("global", connection.clientAddress);
      connection.close("connection limit reached");

      return;
    }

    this.#dialing.add(connection);
    this.#listeners.guardDescriptors(this.activeCountInAllThreads);
    this.#connector.connect(connection);
  }

  /**
   * Returns true when one more connection fits under the global cap, and then counts it in
   * the threads' shared count, if any, until `#connectionClosed` finds it in the dialing
   * connections or the pool.
   */
  #admit(): boolean {
    const counters = this.threadCounters;

    return counters === undefined ? this.limits.admits(this.activeCount) : counters.tryOpen(this.limits.maxConnections);
  }

  #registered(connection: Connection, backend: Backend): void {
    if (connection.closed) {
      this.limits.release(backend.target);

      return;
    }

    this.#dialing.delete(connection);
    this.pool.add(connection);
    this.stats.backend(connection.backend.id).total++;
    if (this.#log.enabled("debug")) {
      this.#log.debug("connection opened", this.#fields(connection));
    }
  }

  #connectionClosed(connection: Connection, kind: CloseKind, reason: string): void {
    const wasDialing = this.#dialing.delete(connection);
    const wasOpen = this.pool.delete(connection);
    if (wasDialing || wasOpen) {
      this.threadCounters?.closed();
    }
    if (wasOpen) {
      this.#connector.connectionClosed(connection);
      this.limits.release(connection.backend.target);
      this.stats.recordClosed(connection);
      if (this.#log.enabled("debug")) {
        this.#log.debug("connection closed", { ...this.#fields(connection), kind, reason, sent: connection.bytesToBackend, received: connection.bytesToClient });
      }
    }
    if (this.activeCount === 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const wake of waiters) {
        wake();
      }
    }
  }

  #whenIdle(): Promise<void> {
    return this.activeCount === 0 ? Promise.resolve() : new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #fields(connection: Connection): Record<string, unknown> {
    const backend: Backend = connection.backend;

    return { conn: connection.id, client: connection.clientAddress, backend: backend.id, target: backend.target };
  }
}
