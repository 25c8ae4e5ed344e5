import type { Socket } from "bun";
import type { Backend } from "./backend.ts";
import type { BackendSelector } from "./backend-selector.ts";
import type { Clock } from "./clock.ts";
import type { Connection } from "./connection.ts";
import { ConnectDeadlines } from "./connect-deadlines.ts";
import type { ConnectionLimits } from "./connection-limits.ts";
import { DeferredKeepalive } from "./deferred-keepalive.ts";
import { BACKEND_DISABLED, BACKEND_UNHEALTHY, DialAttempt, type DialError, type DialObserver, type DialOptions } from "./dialer.ts";
import { BackendPicker, type FailoverChecks, FailoverPlan } from "./failover-plan.ts";
import type { HealthChecker } from "./health-checker.ts";
import type { LogFields, Logger } from "./logger.ts";
import { PROXY_PROTOCOL_OFF, type ProxyProtocolSettings, usesProxyProtocol } from "./proxy-protocol.ts";
import { LogBudget } from "./log-budget.ts";
import { RateLimitedLog } from "./rate-limited-log.ts";
import type { DisabledIds } from "./round-robin-selector.ts";
import type { BackendCounters, TrafficStats } from "./traffic-stats.ts";

/** Milliseconds between two dial failure lines of one backend id, and between two lines for unserved clients. */
export const FAILURE_LOG_INTERVAL_MS = 10_000;

/**
 * Backend ids with a dial failure log before the map of them is emptied. Each set change drops
 * the ids that left, so this only bounds memory, and a set of 10,000 ids fits.
 */
const MAX_FAILURE_LOGS = 20_000;

/**
 * Dials started inside one another before the next one waits for a microtask. A connect to a
 * missing Unix socket fails inside Bun.connect, so its failover starts the next dial one stack
 * frame deeper, and about 1,400 such failures in a row overflowed the stack.
 */
const MAX_NESTED_DIALS = 32;

/**
 * Dial failure lines that all backend ids together write per FAILURE_LOG_INTERVAL_MS. It is
 * far above the backends of a control plane, and it bounds the lines of a client that fails
 * over thousands of dead backends.
 */
export const DIAL_FAILURE_LINES = 20;

/** The server's parts a BackendConnector reads and updates, and its dial settings. */
export interface BackendConnectorOptions {
  /** The order in which clients try backends. A dial whose target left the selector's current set is abandoned. */
  selector: BackendSelector;
  /** Per-backend caps. The failover plan reserves one connection per dial, released when the dial fails or the connection closes. */
  limits: ConnectionLimits;
  /** Health state, which records every dial's result and puts unhealthy backends last in the failover order. */
  health: HealthChecker;
  /** Traffic counters, for connect durations, dial failures and clients no backend served. */
  stats: TrafficStats;
  /** The server's logger. */
  log: Logger;
  /** Time source of the rate limits on failure lines, so that tests can move it forward. */
  clock: Clock;
  /** Backends one client tries, in the selector's order, before it is closed. 0 means every backend once. */
  maxAttempts: number;
  /** Milliseconds a backend connect may take before the next backend is tried. */
  connectTimeoutMs: number;
  /** Idle milliseconds before TCP keepalive probes start on the backend socket; 0 turns keepalive off (see DeferredKeepalive). */
  keepaliveMs: number;
  /**
   * Backends that receive a PROXY protocol header, for clients accepted from now on.
   * @default PROXY_PROTOCOL_OFF
   */
  proxyProtocol?: ProxyProtocolSettings;
  /**
   * Registers a connection whose dial succeeded, with the traffic counters of its backend id.
   * It must release the backend's reservation itself when the client closed during the dial.
   */
  registered: (connection: Connection, backend: Backend, counters: BackendCounters) => void;
  /** Returns the open connections, each with its backend socket attached, for the keepalive batch. */
  openConnections: () => Iterable<Connection>;
}

/**
 * The dial step of the accept path: tries backends for one client in failover order until one
 * connects, and closes the client when none does.
 *
 * Dials run on callbacks rather than promises, and everything a dial needs is built once per
 * connector, because this path runs for every client.
 */
export class BackendConnector implements DialObserver {
  #selector: BackendSelector;
  readonly #limits: ConnectionLimits;
  readonly #health: HealthChecker;
  readonly #stats: TrafficStats;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #maxAttempts: number;
  readonly #registered: (connection: Connection, backend: Backend, counters: BackendCounters) => void;
  readonly #failoverChecks: FailoverChecks = {
    reserve: (candidate) => this.#limits.tryReserve(candidate.target),
    isHealthy: (candidate) => this.#health.isHealthy(candidate),
    isCoolingDown: (candidate) => this.#health.isCoolingDown(candidate),
  };
  readonly #firstPicker = new BackendPicker(this.#failoverChecks);
  readonly #keepalive: DeferredKeepalive;
  readonly #dialOptions: DialOptions;
  /** Null while no backend receives a PROXY protocol header, so that clients then cost no lookup. */
  #proxyProtocol: ProxyProtocolSettings | null = null;
  // While backends are down every client fails the same way, so these lines are rate-limited:
  // one per backend id, DIAL_FAILURE_LINES for all ids together, and one for the clients no backend served.
  readonly #dialFailureLogs = new Map<string, RateLimitedLog>();
  readonly #dialFailureBudget: LogBudget;
  readonly #unservedLog: RateLimitedLog;
  /** Lines for clients closed because every backend left is cooling down after a failed dial. */
  readonly #coolingLog: RateLimitedLog;
  /** Dials started now on the stack: a failover from a connect that failed at once nests one more. */
  #nestedDials = 0;

  constructor(options: BackendConnectorOptions) {
    this.#selector = options.selector;
    this.#limits = options.limits;
    this.#health = options.health;
    this.#stats = options.stats;
    this.#log = options.log;
    const { clock } = options;
    this.#now = () => clock.now();
    this.#maxAttempts = options.maxAttempts;
    this.#registered = options.registered;
    this.#unservedLog = new RateLimitedLog(this.#log, "error", FAILURE_LOG_INTERVAL_MS, this.#now);
    this.#coolingLog = new RateLimitedLog(this.#log, "warn", FAILURE_LOG_INTERVAL_MS, this.#now);
    const spent = "more backends failed to dial than are logged; the rest of this interval's dial failures are logged at debug";
    this.#dialFailureBudget = new LogBudget(this.#log, "warn", DIAL_FAILURE_LINES, FAILURE_LOG_INTERVAL_MS, spent, this.#now);
    this.useProxyProtocol(options.proxyProtocol ?? PROXY_PROTOCOL_OFF);
    this.#keepalive = new DeferredKeepalive(options.keepaliveMs, options.openConnections);
    this.#dialOptions = {
      connectTimeoutMs: options.connectTimeoutMs,
      deadlines: new ConnectDeadlines(),
      isCurrent: (candidate) => this.#selector.set.hasTarget(candidate.target),
      attached: (_socket: Socket<unknown>, connection: Connection) => {
        if (connection.backend.address.kind === "tcp") {
          this.#keepalive.add(connection);
        }
      },
      descriptorShortage: options.health.descriptorShortage,
    };
  }

  /** Sets the connect timeout and keepalive time of dials started from now on. Dials in flight keep the old timeout. */
  updateTimeouts(timeouts: { connectTimeoutMs: number; keepaliveMs: number }): void {
    this.#dialOptions.connectTimeoutMs = timeouts.connectTimeoutMs;
    this.#keepalive.keepaliveMs = timeouts.keepaliveMs;
  }

  /**
   * Sets which backends receive a PROXY protocol header, for clients accepted from now on.
   * Clients already dialing or open keep the settings they were accepted with.
   */
  useProxyProtocol(settings: ProxyProtocolSettings): void {
    this.#proxyProtocol = usesProxyProtocol(settings) ? settings : null;
  }

  /**
   * Sets the order in which clients accepted from now on try backends. It must pick from the
   * same set as the one it replaces. Clients failing over keep the order they started with.
   */
  useSelector(selector: BackendSelector): void {
    this.#selector = selector;
  }

  /** Returns the backends of the dials in flight. */
  dialingBackends(): Backend[] {
    return this.#dialOptions.deadlines.pending().map((attempt) => attempt.backend);
  }

  /** Returns the backend ids of the dials in flight. */
  dialingBackendIds(): string[] {
    return this.dialingBackends().map((backend) => backend.id);
  }

  /**
   * Applies a set change; call it after the rotation has the new set. Dials in flight whose
   * target left the set are given up, so their clients fail over to the new set at once rather
   * than after the connect timeout. Ids that left lose their dial failure log.
   */
  setChanged(): void {
    const { isCurrent } = this.#dialOptions;
    for (const attempt of this.#dialOptions.deadlines.pending()) {
      if (!isCurrent(attempt.backend)) {
        attempt.targetRemoved();
      }
    }
    for (const id of this.#dialFailureLogs.keys()) {
      if (this.#selector.set.get(id) === undefined) {
        this.#dialFailureLogs.delete(id);
      }
    }
  }

  /**
   * Gives up the dials in flight to backend `id`, so their clients fail over to the next
   * enabled backend at once. Returns how many were given up.
   */
  abandonDialsTo(id: string): number {
    return this.#abandonDials((backend) => backend.id === id);
  }

  /** Gives up the dials in flight to the backends in `disabled`, as `abandonDialsTo` does for one id. */
  abandonDisabledDials(disabled: DisabledIds): number {
    return disabled.size === 0 ? 0 : this.#abandonDials((backend) => disabled.has(backend.id));
  }

  /**
   * Gives up the dials in flight to `target`, whose backend turned unhealthy and lost its open
   * connections, so their clients fail over to a healthy backend at once. Returns how many
   * were given up.
   */
  abandonUnhealthyDials(target: string): number {
    return this.#abandonDials((backend) => backend.target === target, BACKEND_UNHEALTHY);
  }

  #abandonDials(matches: (backend: Backend) => boolean, reason = BACKEND_DISABLED): number {
    const attempts = this.#dialOptions.deadlines.pending().filter((attempt) => matches(attempt.backend));
    for (const attempt of attempts) {
      attempt.giveUp(reason);
    }

    return attempts.length;
  }

  /** Stops the keepalive timer, so that a stopped server keeps no timer alive. Dials still in flight no longer time out. */
  stop(): void {
    this.#keepalive.stop();
    this.#dialOptions.deadlines.stop();
  }

  /**
   * Dials backends until one connects: healthy ones first, in the selector's order, then the
   * unhealthy ones, each at most once and at most `maxAttempts` in all (see FailoverPlan).
   * Returns at once; the outcome arrives through `dialSettled`.
   *
   * @param now `performance.now()` milliseconds, which start the first dial's connect duration
   *   and deadline. The acceptor passes the accept time, which saves a clock read per
   *   connection. The accept path's own work before the dial then counts as connect time.
   */
  connect(connection: Connection, now = performance.now()): void {
    if (this.#proxyProtocol !== null) {
      connection.proxyProtocol = this.#proxyProtocol;
    }
    try {
      const selector = this.#selector;
      const backend = this.#firstPicker.pick(selector);
      if (backend === undefined) {
        this.#noBackend(connection);

        return;
      }
      this.#dial(new DialAttempt(connection, backend, selector, null, this.#dialOptions, this), now);
    } catch (error) {
      this.#internalError(connection, error);
    }
  }

  /** Closes a client that got no first backend: each one is at its cap, or cooling down after a failed dial. */
  #noBackend(connection: Connection): void {
    if (!this.#firstPicker.coolingDown) {
      this.#limits.reject("backend", connection.clientAddress);
      connection.close("every backend is at its connection limit");

      return;
    }

    this.#stats.unserved++;
    this.#logFailure(this.#coolingLog, "every backend failed a dial moments ago and is cooling down; closing client", { conn: connection.id, client: connection.clientAddress });
    connection.close("every backend is cooling down after a failed dial");
  }

  /** Records a dial's outcome and tries the next backend of the plan after a failure. */
  dialSettled(attempt: DialAttempt, error?: DialError): void {
    const { connection, backend } = attempt;
    try {
      if (error === undefined) {
        const counters = this.#stats.backend(backend.id);
        counters.connectDuration.observe(attempt.connectSeconds);
        this.#health.dialSucceeded(backend);
        this.#registered(connection, backend, counters);

        return;
      }

      this.#limits.release(backend.target);
      // A backend that status already reports unhealthy or retrying was expected to fail, so
      // the line is only a debug line: its health log reported it when it turned unhealthy.
      const expected = error.givenUp || !this.#health.isReportedHealthy(backend);
      // When tinylb gave the dial up itself (`givenUp`, after a set change, a disable or for lack
      // of a file descriptor), the backend did not fail: there is nothing to count or back off from.
      if (error.givenUp) {
        if (attempt.trial) {
          this.#health.dialGivenUp(backend);
        }
      } else {
        this.#stats.backend(backend.id).dialFailures++;
        this.#health.dialFailed(backend, error.message, attempt.trial);
      }
      if (connection.closed) {
        return;
      }
      // The first dial of a client has no plan: it is built here, from the selector that dial picked from.
      const plan = attempt.plan ?? new FailoverPlan(attempt.selector, this.#failoverChecks, this.#maxAttempts, backend);
      const next = plan.next(backend, !error.givenUp);
      // The message is constant and the backend is in fields, so log tools can group the lines.
      // `next` names the backend the client moves on to, or "none" when it is closed.
      const fields = { conn: connection.id, client: connection.clientAddress, backend: backend.id, target: backend.target, err: error.detail, next: next?.id ?? "none" };
      if (error.givenUp) {
        this.#log.debug("dial given up", fields);
      } else if (expected) {
        this.#log.debug("dial failed", fields);
      } else {
        this.#logFailure(this.#dialFailureLog(backend.id), "dial failed", fields);
      }
      if (next !== undefined) {
        this.#dial(new DialAttempt(connection, next, attempt.selector, plan, this.#dialOptions, this));

        return;
      }

      this.#stats.unserved++;
      // maxAttempts is named when it ended the failover, since backends then remain untried.
      const capped = this.#maxAttempts > 0 && plan.attempts >= this.#maxAttempts ? { maxAttempts: this.#maxAttempts } : {};
      this.#logFailure(this.#unservedLog, "no backend could be dialled; closing client", { conn: connection.id, client: connection.clientAddress, tried: plan.attempts, ...capped });
      connection.close("every backend failed");
    } catch (caught) {
      this.#internalError(connection, caught);
    }
  }

  /** Writes a rate-limited failure line; one that is suppressed still goes out as a debug line. */
  #logFailure(log: RateLimitedLog, msg: string, fields: LogFields): void {
    if (!log.log(msg, fields) && this.#log.enabled("debug")) {
      this.#log.debug(msg, fields);
    }
  }

  #dialFailureLog(id: string): RateLimitedLog {
    let log = this.#dialFailureLogs.get(id);
    if (log === undefined) {
      // A backstop only: set changes drop the ids that left.
      if (this.#dialFailureLogs.size >= MAX_FAILURE_LOGS) {
        this.#dialFailureLogs.clear();
      }
      log = new RateLimitedLog(this.#log, "warn", FAILURE_LOG_INTERVAL_MS, this.#now, this.#dialFailureBudget);
      this.#dialFailureLogs.set(id, log);
    }

    return log;
  }

  /**
   * Starts a dial of a backend the first pick or the plan handed out, with the reservation it
   * took. Deep in a chain of connects that failed at once, the dial starts from a microtask, on
   * an empty stack, and reads the clock then.
   *
   * @param now `performance.now()` milliseconds at which the connect starts, read here if omitted.
   */
  #dial(attempt: DialAttempt, now?: number): void {
    // At once, also for a dial that starts from a microtask, so the next client sees a trial.
    attempt.trial = this.#health.dialStarted(attempt.backend, this.#dialOptions.connectTimeoutMs);
    if (this.#nestedDials >= MAX_NESTED_DIALS) {
      queueMicrotask(() => this.#startDial(attempt));

      return;
    }

    this.#startDial(attempt, now);
  }

  #startDial(attempt: DialAttempt, now = performance.now()): void {
    this.#nestedDials++;
    try {
      attempt.start(now);
    } catch (error) {
      this.#internalError(attempt.connection, error);
    } finally {
      this.#nestedDials--;
    }
  }

  #internalError(connection: Connection, error: unknown): void {
    this.#log.error("invariant violated: connection failed outside a dial", { conn: connection.id, client: connection.clientAddress, err: error });
    connection.reset("internal error");
  }
}
