import type { BackendConnector } from "./backend-connector.ts";
import type { BackendSelector, BalanceMode } from "./backend-selector.ts";
import { backendIdUsage } from "./backend-id-usage.ts";
import { BackendSet } from "./backend-set.ts";
import { ClientAcceptor } from "./client-acceptor.ts";
import { systemClock } from "./clock.ts";
import type { Connection } from "./connection.ts";
import { CounterRetention, DEFAULT_COUNTER_RETENTION } from "./counter-retention.ts";
import { ConnectionPool } from "./connection-pool.ts";
import { ConnectionLimits } from "./connection-limits.ts";
import { HealthChecker } from "./health-checker.ts";
import { IdleSweeper } from "./idle-sweeper.ts";
import { describeSetChange } from "./backend-set-log.ts";
import { DisabledBackends } from "./disabled-backends.ts";
import { LeastConnectionsSelector } from "./least-connections-selector.ts";
import type { BoundListener } from "./listener.ts";
import { ListenerSet } from "./listener-set.ts";
import { type LogFields, Logger, silentLogger } from "./logger.ts";
import { RoundRobinSelector } from "./round-robin-selector.ts";
import { RemovalPolicies } from "./removal-policies.ts";
import { PROXY_PROTOCOL_OFF, type ProxyProtocolSettings } from "./proxy-protocol.ts";
import type { ApplySetOptions, ServerOptions } from "./server-options.ts";
import { SlowStart } from "./slow-start.ts";
import { SlowStartRotation } from "./slow-start-rotation.ts";
import { SLOW_START_OFF, type SlowStartSettings, usesSlowStart } from "./slow-start-setting.ts";
import { ThreadCounters } from "./thread-counters.ts";
import { TrafficStats } from "./traffic-stats.ts";

export type { ApplySetOptions, ServerOptions } from "./server-options.ts";

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
 *
 * A backend in slow start (see SlowStart) gets a growing share of the first picks, under
 * either balance mode. While no backend can have a slow start, the selectors do not read it.
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
  /** Windows of backends in slow start, whose weights the selectors read. */
  readonly slowStart: SlowStart;
  /** Counters shared with the other relay threads, when there are any (`--workers`). */
  readonly threadCounters: ThreadCounters | undefined;
  readonly #selector: RoundRobinSelector;
  #balance: BalanceMode = "roundrobin";
  readonly #options: Required<Omit<ServerOptions, "threadCounters" | "balance" | "proxyProtocol" | "slowStart">>;
  #proxyProtocol: ProxyProtocolSettings = PROXY_PROTOCOL_OFF;
  readonly #log: Logger;
  readonly #listeners: ListenerSet<Connection>;
  #shuttingDown = false;
  /** Clock time at which `shutdown` closes the connections still open, while it waits. */
  #shutdownDeadline: number | undefined;
  readonly #setListeners: ((set: BackendSet) => void)[] = [];
  readonly #acceptor: ClientAcceptor;
  readonly #connector: BackendConnector;
  readonly #retention: CounterRetention | undefined;
  readonly #idle: IdleSweeper;

  /**
   * @param health replaces the checker built from `options.health`, such as a relay worker's
   *   copy of the main thread's health state.
   * @param slowStart replaces the leading SlowStart built here, such as a relay worker's
   *   follower of the main thread's windows. `options.slowStart` configures it.
   */
  constructor(options: ServerOptions, health?: HealthChecker, slowStart?: SlowStart) {
    this.#options = { connectTimeoutMs: 3000, keepaliveMs: 30_000, idleTimeoutMs: 0, maxConnections: 0, maxConnectionsPerBackend: 0, threads: 1, health: {}, maxAttempts: 0, onRemoval: "close", drainTimeoutMs: 30_000, onUnhealthy: "keep", clock: systemClock, logger: silentLogger, reusePort: false, inheritedSockets: [], controlServers: 0, logSetChanges: true, threadIndex: 0, counterRetention: DEFAULT_COUNTER_RETENTION, ...options };
    this.#log = this.#options.logger.with({ component: "server" });
    this.disabled = new DisabledBackends(this.#log, this.#options.logSetChanges);
    this.#listeners = new ListenerSet(this.#log, this.#options.reusePort, this.#options.inheritedSockets, this.#options.controlServers);
    this.#listeners.setKeepAlive(this.#options.keepaliveMs);
    // Several threads always share per-target counts, so that a reload can turn leastconn on.
    this.threadCounters = this.#options.threads > 1 ? new ThreadCounters(options.threadCounters, true) : undefined;
    this.#selector = new RoundRobinSelector(BackendSet.EMPTY, this.threadCounters, this.disabled);
    this.limits = new ConnectionLimits(
      { ...this.#options, globalCountShared: this.threadCounters !== undefined, sharedBackendCounts: this.threadCounters?.backendCounts },
      this.#options.logger,
    );
    this.health = health ?? new HealthChecker({ ...this.#options.health, clock: this.#options.clock, logger: this.#options.logger });
    this.slowStart = slowStart ?? new SlowStart(this.#options.clock, this.#options.logger);
    this.slowStart.configure(options.slowStart ?? SLOW_START_OFF);
    this.#removals = new RemovalPolicies(this.pool, this.health, this.#log, this.#options.clock, this.#options);
    this.health.onFlip((backend, healthy) => {
      if (this.#removals.healthFlipped(backend, healthy)) {
        // A dial that completed after the flip would attach a connection the policy just closed.
        this.#connector.abandonUnhealthyDials(backend.target);
      }
      this.slowStart.healthFlipped(backend, healthy);
    });
    this.health.setDisabled(this.disabled);
    this.disabled.onChange(() => {
      this.health.setDisabled(this.disabled);
      // A client still dialing a backend that was just disabled has not been served yet, so it
      // moves on to an enabled one rather than wait for a connect that may hang.
      this.#connector.abandonDisabledDials(this.disabled);
    });
    this.#acceptor = new ClientAcceptor({
      pool: this.pool,
      stats: this.stats,
      limits: this.limits,
      selector: this.#selector,
      disabled: this.disabled,
      listeners: this.#listeners,
      threadCounters: this.threadCounters,
      log: this.#log,
      firstId: this.#options.threadIndex + 1,
      threads: this.#options.threads,
      keepaliveMs: this.#options.keepaliveMs,
      connector: {
        selector: this.#selector,
        limits: this.limits,
        health: this.health,
        stats: this.stats,
        log: this.#log,
        clock: this.#options.clock,
        maxAttempts: this.#options.maxAttempts,
        connectTimeoutMs: this.#options.connectTimeoutMs,
        keepaliveMs: this.#options.keepaliveMs,
      },
    });
    this.#connector = this.#acceptor.connector;
    this.#useBalance(options.balance ?? "roundrobin");
    this.setProxyProtocol(options.proxyProtocol ?? PROXY_PROTOCOL_OFF);
    const retention = this.#options.counterRetention;
    if (retention !== false) {
      this.#retention = new CounterRetention(this.stats, () => backendIdUsage(this), retention, this.#options.clock, this.#log);
    }
    this.#idle = new IdleSweeper(this.pool, this.stats, this.#options.clock);
    this.#idle.setTimeout(this.#options.idleTimeoutMs);
  }

  /**
   * Sets the connect timeout and keepalive time for connections accepted and dials started
   * from now on; open connections and dials in flight keep the old values.
   */
  updateTimeouts(timeouts: { connectTimeoutMs: number; keepaliveMs: number }): void {
    this.#options.connectTimeoutMs = timeouts.connectTimeoutMs;
    this.#options.keepaliveMs = timeouts.keepaliveMs;
    this.#acceptor.keepaliveMs = timeouts.keepaliveMs;
    this.#listeners.setKeepAlive(timeouts.keepaliveMs);
    this.#connector.updateTimeouts(timeouts);
  }

  /** Idle timeout of open connections in milliseconds; 0 while it is off. */
  get idleTimeoutMs(): number {
    return this.#idle.timeoutMs;
  }

  /**
   * Sets the idle timeout of the open connections and of those accepted from now on; 0 turns
   * it off. Turning it on counts idle time from now, and a change keeps the idle time already
   * spent (see IdleSweeper.setTimeout).
   */
  setIdleTimeout(timeoutMs: number): void {
    if (timeoutMs !== this.#idle.timeoutMs && !this.#shuttingDown) {
      this.#idle.setTimeout(timeoutMs);
    }
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

  /** Backends that receive a PROXY protocol header, for clients accepted from now on. */
  get proxyProtocol(): ProxyProtocolSettings {
    return this.#proxyProtocol;
  }

  /**
   * Sets which backends receive a PROXY protocol header, for clients accepted from now on, and
   * for the probes of this thread's health checker. Open connections and clients still
   * dialing keep the settings they were accepted with.
   */
  setProxyProtocol(settings: ProxyProtocolSettings): void {
    this.#proxyProtocol = settings;
    this.#connector.useProxyProtocol(settings);
    this.health.setProxyProtocol(settings);
  }

  /**
   * Sets the slow start windows of backends that return from now on, and the duration of the
   * windows in progress (see SlowStart.configure), for the first pick of clients accepted
   * from now on.
   */
  setSlowStart(settings: SlowStartSettings): void {
    this.slowStart.configure(settings);
    this.#connector.useSelector(this.#selectorFor(this.#balance));
  }

  /** Switches the selector and the per-target counts to `mode`. Returns how many connections this thread has open or dialing. */
  #useBalance(mode: BalanceMode): number {
    const open = this.#openTargets();
    if (mode === "leastconn") {
      this.limits.startCounting(open);
    } else {
      this.limits.stopCounting(open);
    }
    this.#connector.useSelector(this.#selectorFor(mode));
    this.#balance = mode;

    return open.length;
  }

  /** Builds the selector of `mode`, reading the slow start weights only while slow start is on. */
  #selectorFor(mode: BalanceMode): BackendSelector {
    const slowStart = usesSlowStart(this.slowStart.settings) ? this.slowStart : undefined;
    if (mode === "leastconn") {
      return new LeastConnectionsSelector(this.#selector, this.limits, slowStart);
    }

    return slowStart === undefined ? this.#selector : new SlowStartRotation(this.#selector, slowStart);
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
    return this.#acceptor.activeCount;
  }

  /**
   * Open and dialing connections of every relay thread, from the threads' shared count, or
   * `activeCount` with one thread. Exact, unlike the workers' counter deltas, which are up to
   * a second old.
   */
  get activeCountInAllThreads(): number {
    return this.#acceptor.activeCountInAllThreads;
  }

  /**
   * Binds every listener. On a failure the listeners bound so far are stopped.
   *
   * @throws {ListenError} naming the address that could not be bound.
   */
  async start(): Promise<void> {
    await this.#listeners.bind(this.#options.listen, this.#acceptor.clientHandlers());
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
   * Backends that joined the set or changed target begin a slow start, unless `options` or the
   * change itself shows that they were serving already (see SlowStart.setReplaced).
   */
  applySet(set: BackendSet, fields: LogFields = {}, options: ApplySetOptions = {}): boolean {
    const previous = this.#selector.set;
    if (set.equals(previous)) {
      return false;
    }

    // In the main thread, every target gets its shared per-backend count before a client can reach it.
    this.threadCounters?.backendCounts?.assign(set.targets);
    this.#selector.update(set);
    // Before the listeners, so that the set sent to the relay workers carries the backends that joined pending.
    this.health.update(set);
    // After the health update, which marks the backends that joined pending, and before the
    // listeners too, so that the set sent to the relay workers carries the new windows.
    this.slowStart.setReplaced(previous, set, options.discovery, (backend) => this.health.state(backend.id)?.condition === "pending");
    for (const listener of this.#setListeners) {
      listener(set);
    }
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

  /**
   * Milliseconds until a shutdown closes the connections still open, or undefined when none
   * waits for them. The deadline belongs to the process, so it counts while any thread (a relay
   * worker too) has a connection open, even when this thread has none.
   */
  get shutdownRemainingMs(): number | undefined {
    if (this.#shutdownDeadline === undefined || this.activeCountInAllThreads === 0) {
      return undefined;
    }

    return Math.max(0, this.#shutdownDeadline - this.#options.clock.now());
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
    // Every thread starts its grace at the same signal, so this deadline holds for the whole process.
    if (graceMs > 0) {
      this.#shutdownDeadline = this.#options.clock.now() + graceMs;
    }
    if (this.activeCount > 0 && graceMs > 0) {
      this.#log.info("waiting for open connections to finish", { open: this.activeCount, graceMs });
      await Promise.race([this.#acceptor.whenIdle(), Bun.sleep(graceMs)]);
    }

    this.health.stop();
    this.slowStart.stop();
    this.#connector.stop();
    this.#retention?.stop();
    this.#idle.stop();

    return this.closeAll("balancer shutting down");
  }

  /** Closes every open and dialing connection at once; returns how many were closed. */
  closeAll(reason: string): number {
    this.#removals.cancelDrains();
    const dialing = this.#acceptor.closeDialing(reason);

    return dialing + this.pool.closeAll(reason);
  }
}
