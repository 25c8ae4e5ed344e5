import type { BackendSet } from "./backend-set.ts";
import type { OpenTraffic } from "./balancer-status.ts";
import { ListenError } from "./listener.ts";
import type { Logger } from "./logger.ts";
import type { Server } from "./server.ts";
import { httpServerCount } from "./http-connection-cap.ts";
import type { Settings } from "./settings.ts";
import type { DialResult, HealthSnapshot, LiveSettings, SetCommand, StatsDelta, WorkerCommand, WorkerEvent, WorkerServerOptions } from "./worker-messages.ts";

/** Milliseconds a relay worker may take to bind its listeners. */
const START_TIMEOUT_MS = 10_000;

/** One relay worker thread and the state the main thread keeps of it. */
interface RelayWorker {
  thread: Worker;
  /** Number of the worker from 1, as its log lines give it (`worker`). */
  index: number;
  /** Connections open or dialing in the worker, as of its last counter delta. */
  open: number;
  /** Open connections by backend id, as of the last counter delta. */
  openById: Record<string, OpenTraffic>;
  /** Backend ids outside the set with an open connection or a dial in flight, as of the last counter delta. */
  idsInUse: ReadonlySet<string>;
  /** Set once the thread ended, for example after an uncaught error. */
  exited: boolean;
  stopped?: (forced: number) => void;
  /** Callers waiting for the replies to `close-all` and `close-backend`, in the order the commands were sent. */
  closeReplies?: ((closed: number) => void)[];
  /** Callers waiting for the replies to `sync`, in the order the commands were sent. */
  syncReplies?: (() => void)[];
  /** Callers waiting for the replies to `stats-request`, by request number. */
  statsReplies: Map<number, () => void>;
}

/** Milliseconds a worker may take beyond the grace period to report that it stopped. */
const STOP_MARGIN_MS = 5000;

/**
 * Milliseconds after a health snapshot during which further changes are gathered into one
 * snapshot. Without it, each of k failed dials in a row sent every worker a snapshot of up to
 * k backends, which stalled the main thread when thousands of backends failed at once.
 */
const HEALTH_BATCH_MS = 50;

/** Milliseconds a worker may take to report how many connections a `close-all` or `close-backend` closed. */
const CLOSE_REPLY_MS = 1000;

/** Milliseconds a worker may take to reply to `sync`. */
const SYNC_REPLY_MS = 1000;

/**
 * Milliseconds a worker may take to send its counters for a read of the status or the metrics.
 * A worker that replies later is counted with its last delta, so the read waits at most this long.
 */
export const STATS_REPLY_MS = 250;

/**
 * The relay worker threads of a balancer started with `--workers N`. There are N - 1 of
 * them, and each runs a Server of its own on the main thread's TCP addresses. The
 * listeners share each port with SO_REUSEPORT, so the kernel spreads clients over N
 * event loops.
 *
 * The main thread stays the only place where backend sets come from: `publish` sends
 * every set it applies to every worker, which applies it the same way, so a target that
 * left the set loses its connections in every worker.
 *
 * The main thread's health checker is the only health state: it runs the probes and
 * records the dial results the workers send, and every change of a backend's condition
 * goes to every worker as a snapshot (see WorkerHealth). The main thread's slow start windows
 * go with each snapshot and each set, and replace the worker's (see SlowStart.replace).
 *
 * Workers send their traffic and rejection counters as deltas every second, with their
 * open connections by backend id. The pool adds the deltas to the main Server's counters
 * and keeps the open connections, so status and /metrics count every thread. Before a read of
 * either, the pool requests a delta from every worker (see `refreshCounters`), which it sends at once.
 *
 * The threads share one rotation and one count of open connections through ThreadCounters,
 * so the global cap applies to all of them together, and with a per-backend cap one count per
 * backend target (see SharedBackendCounts). Unix socket listeners are served by the main thread alone.
 */
export class WorkerPool {
  readonly #workers: RelayWorker[];
  readonly #server: Server;
  readonly #log: Logger;
  #healthQueued = false;
  /** Runs until HEALTH_BATCH_MS after the last snapshot; changes meanwhile wait for it. */
  #healthBatch: Timer | undefined;
  /** Set when the health state changed during the running batch. */
  #healthChangedInBatch = false;
  /** Times a worker stopped its listeners because the descriptor limit was nearly reached. */
  acceptPauses = 0;
  /** Number of the last `stats-request`, unique across the workers. */
  #statsRequests = 0;

  private constructor(workers: RelayWorker[], server: Server, log: Logger) {
    this.#workers = workers;
    this.#server = server;
    this.#log = log;
  }

  /**
   * Starts `count` relay workers with `options` beside `server` and resolves once every one
   * accepts. Counter deltas are added to the server's counters, and the workers follow its
   * health checker.
   *
   * @throws {ListenError} when a worker cannot bind its listeners or does not start in time.
   */
  static async start(
    count: number,
    options: WorkerServerOptions,
    server: Server,
    logger: Logger,
  ): Promise<WorkerPool> {
    const log = logger.with({ component: "workers" });
    const workers: RelayWorker[] = [];
    const pool = new WorkerPool(workers, server, log);
    const started: Promise<void>[] = [];
    for (let index = 1; index <= count; index++) {
      const thread = new Worker(new URL("./relay-worker.ts", import.meta.url).href);
      const worker: RelayWorker = { thread, index, open: 0, openById: {}, idsInUse: new Set(), exited: false, statsReplies: new Map() };
      workers.push(worker);
      started.push(pool.#watch(worker, index));
      // The counters' SharedArrayBuffer is shared with the worker, not copied.
      const shared = { ...options, threadCounters: server.threadCounters?.buffer, threadIndex: index };
      const set = pool.#setCommand(server.set);
      pool.#send(worker, { type: "start", index, options: shared, logLevel: logger.level, logFormat: logger.format, set, disabled: server.disabled.ids() });
    }
    pool.#queueHealth();
    server.health.onConditionChange(() => pool.#queueHealth());
    server.slowStart.onChange(() => pool.#queueHealth());

    try {
      await Promise.all(started);
    } catch (error) {
      for (const worker of workers) {
        worker.thread.terminate();
      }
      throw error;
    }
    // Counted as --workers counts them: the main thread relays too.
    log.info("relay workers started", { workers: count + 1 });

    return pool;
  }

  /** Connections open or dialing in the workers, as of their last counter deltas. */
  get openConnections(): number {
    return this.#workers.reduce((sum, worker) => sum + worker.open, 0);
  }

  /** Open connections of every worker by backend id, as of their last counter deltas. */
  openTrafficById(): Map<string, OpenTraffic> {
    const byId = new Map<string, OpenTraffic>();
    for (const worker of this.#workers) {
      for (const [id, traffic] of Object.entries(worker.openById)) {
        const sum = byId.get(id);
        if (sum === undefined) {
          byId.set(id, { ...traffic });
          continue;
        }
        sum.active += traffic.active;
        sum.bytesToBackend += traffic.bytesToBackend;
        sum.bytesToClient += traffic.bytesToClient;
      }
    }

    return byId;
  }

  /** Returns true when a worker had an open connection or a dial in flight for backend `id` at its last counter delta. */
  usesBackendId(id: string): boolean {
    return this.#workers.some((worker) => worker.idsInUse.has(id));
  }

  /**
   * Sends the main thread's disabled backend ids to every worker, whose rotations then pass
   * over them. A worker applies the list when it reads the message, after every set sent before it.
   */
  publishDisabled(ids: string[]): void {
    for (const worker of this.#workers) {
      this.#send(worker, { type: "disabled", ids });
    }
  }

  /**
   * Sends a backend set to every worker; each applies it as the main Server does. The
   * health snapshot follows, because the set can change which backends are degraded.
   */
  publish(set: BackendSet): void {
    const command = this.#setCommand(set);
    for (const worker of this.#workers) {
      this.#send(worker, command);
    }
    this.#queueHealth();
  }

  #setCommand(set: BackendSet): SetCommand {
    const backends = set.backends.map((backend) => ({ id: backend.id, target: backend.target }));
    const slots = this.#server.threadCounters?.backendCounts?.slotsOf(set.targets) ?? {};

    return { type: "set", backends, slots, slowStart: this.#server.slowStart.windows(), health: this.#healthSnapshot() };
  }

  /**
   * Sends the main thread's health state to every worker once the current task ends, or,
   * within HEALTH_BATCH_MS of the previous snapshot, once that time is over. The first
   * change after a quiet spell thus reaches the workers at once, and a burst of changes
   * (a new set, flips, the degraded state, thousands of failed dials) costs one message
   * per worker every 50 ms. The snapshot reads the checker when it is sent, after every
   * change it covers.
   */
  #queueHealth(): void {
    if (this.#healthBatch !== undefined) {
      this.#healthChangedInBatch = true;

      return;
    }
    if (this.#healthQueued) {
      return;
    }

    this.#healthQueued = true;
    queueMicrotask(() => {
      this.#healthQueued = false;
      this.#sendHealth();
    });
  }

  /** Sends a snapshot to every worker and starts a batch that gathers the changes after it. */
  #sendHealth(): void {
    const snapshot = this.#healthSnapshot();
    for (const worker of this.#workers) {
      this.#send(worker, { type: "health", snapshot });
    }

    this.#healthBatch = setTimeout(() => {
      this.#healthBatch = undefined;
      if (this.#healthChangedInBatch) {
        this.#healthChangedInBatch = false;
        this.#sendHealth();
      }
    }, HEALTH_BATCH_MS);
    // The batch alone must not keep the process running.
    this.#healthBatch.unref();
  }

  #healthSnapshot(): HealthSnapshot {
    const health = this.#server.health;
    const backends = health
      .states()
      .filter((state) => state.condition !== "healthy")
      .map((state) => ({
        id: state.id,
        target: state.target,
        condition: state.condition,
        cause: state.cause,
        failing: state.dialFailureStreak > 0,
        backoffLeftMs: health.backoffLeftMs(state.id),
      }));

    return { backends, degraded: health.degraded, slowStart: this.#server.slowStart.windows() };
  }

  /** Records a worker's dial in the main thread's health checker, when the backend is still in the set with that target. */
  #recordDial(result: DialResult): void {
    const backend = this.#server.set.get(result.id);
    if (backend === undefined || backend.target !== result.target) {
      return;
    }
    if (result.type === "dial-failed") {
      this.#server.health.dialFailed(backend, result.reason);
    } else {
      this.#server.health.dialSucceeded(backend);
    }
  }

  /** Sends the connect timeout, keepalive time, balance mode, PROXY protocol, slow start and log settings of a config reload to every worker. */
  applyLiveSettings(settings: LiveSettings): void {
    // Only these fields: a whole Settings object would be copied into every message.
    const { connectTimeoutMs, keepaliveMs, idleTimeoutMs, balance, proxyProtocol, slowStart, logLevel, logFormat } = settings;
    for (const worker of this.#workers) {
      this.#send(worker, { type: "live-settings", settings: { connectTimeoutMs, keepaliveMs, idleTimeoutMs, balance, proxyProtocol, slowStart, logLevel, logFormat } });
    }
  }

  /**
   * Closes every connection in every worker at once, and resolves with how many they closed.
   * Each worker counts the connections it closed and sends the count back, because the open
   * counts of the last counter deltas are up to a second old. A worker that ended already
   * counts 0, and one that does not reply within 1 s is left out of the sum.
   */
  closeAll(reason: string): Promise<number> {
    return this.#closeInWorkers({ type: "close-all", reason });
  }

  /**
   * Closes the connections opened for backend `id` in every worker, and gives up their dials
   * in flight to it, as `Server.closeBackendConnections` does. Resolves with how many
   * connections they closed, counted as `closeAll` counts them.
   */
  closeBackend(id: string, reason: string): Promise<number> {
    return this.#closeInWorkers({ type: "close-backend", id, reason });
  }

  /**
   * Resolves once every worker has applied the sets, health snapshots, disabled ids and
   * settings sent before this call. Messages to a worker arrive in order, so its reply to
   * `sync` comes after all of them. The admin API waits for it, so that a client that connects
   * after a change returned meets the new set in every thread. A worker that ended already is
   * not asked, and one that does not reply within 1 s is not waited for.
   */
  async synced(): Promise<void> {
    await this.#requestEach(
      (worker) =>
        new Promise<void>((resolve) => {
          (worker.syncReplies ??= []).push(resolve);
          this.#send(worker, { type: "sync" });
        }),
      SYNC_REPLY_MS,
    );
  }

  /**
   * Requests a counter delta from every worker now and resolves once each has been added, so that
   * the counters and open connections include every connection the workers had when they read
   * the request. Returns the numbers of the workers that did not reply within `timeoutMs`.
   * Their counts stay those of their last delta, up to a second old. A worker that ended
   * already is not asked and is not late, because it has no connections.
   */
  async refreshCounters(timeoutMs = STATS_REPLY_MS): Promise<number[]> {
    const requests = new Map<RelayWorker, number>();
    const replies = await this.#requestEach(
      (worker) =>
        new Promise<void>((resolve) => {
          const request = ++this.#statsRequests;
          requests.set(worker, request);
          worker.statsReplies.set(request, resolve);
          this.#send(worker, { type: "stats-request", request });
        }),
      timeoutMs,
    );
    for (const [worker, request] of requests) {
      worker.statsReplies.delete(request);
    }

    return replies.filter((reply) => reply.late).map((reply) => reply.worker.index);
  }

  async #closeInWorkers(command: WorkerCommand & { type: "close-all" | "close-backend" }): Promise<number> {
    const replies = await this.#requestEach(
      (worker) =>
        new Promise<number>((resolve) => {
          (worker.closeReplies ??= []).push(resolve);
          this.#send(worker, command);
        }),
      CLOSE_REPLY_MS,
    );

    return replies.reduce((sum, reply) => sum + (reply.late ? 0 : reply.value!), 0);
  }

  /**
   * Sends a request to every worker that has not ended, through `request`, and waits for each
   * reply or for `timeoutMs`, whichever comes first. A late reply has no value.
   */
  async #requestEach<T>(request: (worker: RelayWorker) => Promise<T>, timeoutMs: number): Promise<{ worker: RelayWorker; late: boolean; value?: T }[]> {
    const running = this.#workers.filter((worker) => !worker.exited);

    return Promise.all(
      running.map(async (worker) => {
        let timer: Timer | undefined;
        const timedOut = new Promise<{ worker: RelayWorker; late: boolean }>((resolve) => {
          timer = setTimeout(() => resolve({ worker, late: true }), timeoutMs);
        });
        const replied = request(worker).then((value) => ({ worker, late: false, value }));
        const reply = await Promise.race([replied, timedOut]);
        clearTimeout(timer);

        return reply;
      }),
    );
  }

  /**
   * Stops every worker: each stops accepting, waits up to `graceMs` for its connections,
   * closes the rest and sends its last counters. Returns how many were closed by force.
   * A worker that ended already, or that does not report back within the grace period
   * plus 5 s, is not waited for.
   */
  async shutdown(graceMs: number): Promise<number> {
    const results = this.#workers
      .filter((worker) => !worker.exited)
      .map((worker) => {
        const stopped = new Promise<number>((resolve) => {
          worker.stopped = resolve;
          this.#send(worker, { type: "shutdown", graceMs });
        });

        return Promise.race([stopped, Bun.sleep(graceMs + STOP_MARGIN_MS).then(() => 0)]);
      });
    const forced = (await Promise.all(results)).reduce((sum, count) => sum + count, 0);
    for (const worker of this.#workers) {
      worker.thread.terminate();
    }
    // A batched snapshot has no thread left to go to.
    clearTimeout(this.#healthBatch);

    return forced;
  }

  #send(worker: RelayWorker, command: WorkerCommand): void {
    worker.thread.postMessage(command);
  }

  /** Routes a worker's events; resolves once it accepts, rejects when it cannot start. */
  #watch(worker: RelayWorker, index: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new ListenError(`relay worker ${index} did not start within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
      worker.thread.onmessage = (message: MessageEvent<WorkerEvent>) => {
        const event = message.data;
        switch (event.type) {
          case "started":
            clearTimeout(timer);
            resolve();
            break;
          case "start-failed":
            clearTimeout(timer);
            reject(new ListenError(`relay worker ${index}: ${event.message}`));
            break;
          case "dial-failed":
          case "dial-succeeded":
            this.#recordDial(event);
            break;
          case "stats":
            worker.open = event.open;
            worker.openById = event.openById;
            worker.idsInUse = new Set(event.idsInUse);
            this.#add(event.delta);
            if (event.request !== undefined) {
              worker.statsReplies.get(event.request)?.();
            }
            break;
          case "closed":
            worker.closeReplies?.shift()?.(event.closed);
            break;
          case "synced":
            worker.syncReplies?.shift()?.();
            break;
          case "stopped":
            worker.open = 0;
            worker.openById = {};
            worker.idsInUse = new Set();
            worker.stopped?.(event.forced);
            break;
        }
      };
      worker.thread.addEventListener("close", () => {
        worker.exited = true;
        worker.open = 0;
        worker.openById = {};
        worker.idsInUse = new Set();
        worker.stopped?.(0);
        worker.closeReplies?.splice(0).forEach((reply) => reply(0));
        worker.syncReplies?.splice(0).forEach((reply) => reply());
        worker.statsReplies.forEach((reply) => reply());
      });
      worker.thread.onerror = (error) => {
        clearTimeout(timer);
        this.#log.error("relay worker failed", { worker: index, err: error.message });
        reject(new ListenError(`relay worker ${index} failed: ${error.message}`));
      };
    });
  }

  #add(delta: StatsDelta): void {
    const stats = this.#server.stats;
    stats.accepted += delta.accepted;
    stats.unserved += delta.unserved;
    stats.idleClosed += delta.idleClosed;
    this.#server.limits.rejectedGlobal += delta.rejectedGlobal;
    this.#server.limits.rejectedBackend += delta.rejectedBackend;
    this.acceptPauses += delta.acceptPauses;
    if (delta.connectionDuration !== undefined) {
      stats.connectionDuration.add(delta.connectionDuration);
    }
    for (const [id, grown] of Object.entries(delta.backends)) {
      const counters = stats.backend(id);
      counters.total += grown.total;
      counters.dialFailures += grown.dialFailures;
      counters.bytesToBackend += grown.bytesToBackend;
      counters.bytesToClient += grown.bytesToClient;
      if (grown.connectDuration !== undefined) {
        counters.connectDuration.add(grown.connectDuration);
      }
    }
  }
}

const poolsByServer = new WeakMap<Server, WorkerPool>();

/** Returns the relay workers started beside `server`, for status pages that add up every thread. */
export function relayWorkersOf(server: Server): WorkerPool | undefined {
  return poolsByServer.get(server);
}

/**
 * Returns how many threads accept and relay: `settings.workers`, or 1 when no listen address
 * is TCP, because relay workers share only TCP ports and Unix socket clients reach the main
 * thread alone.
 */
export function relayThreadCount(settings: Pick<Settings, "workers" | "listen">): number {
  return settings.listen.some((address) => address.kind === "tcp") ? settings.workers : 1;
}

/**
 * Starts `settings.workers - 1` relay workers beside `server`, on the TCP addresses it is
 * bound to, and forwards every backend set it applies to them. Returns undefined with one
 * worker, or when no listener is TCP.
 *
 * @throws {ListenError} when a worker cannot bind its listeners or does not start in time.
 */
export async function startRelayWorkers(settings: Settings, server: Server, logger: Logger): Promise<WorkerPool | undefined> {
  if (relayThreadCount(settings) <= 1) {
    if (settings.workers > 1) {
      logger.with({ component: "workers" }).warn("--workers needs a TCP listener; relaying on the main thread only", { workers: settings.workers });
    }

    return undefined;
  }

  const listen = server.listeners.map((listener) => listener.address).filter((address) => address.kind === "tcp");
  const options: WorkerServerOptions = {
    listen,
    connectTimeoutMs: settings.connectTimeoutMs,
    keepaliveMs: settings.keepaliveMs,
    idleTimeoutMs: settings.idleTimeoutMs,
    maxConnections: settings.maxConnections,
    maxConnectionsPerBackend: settings.maxConnectionsPerBackend,
    balance: settings.balance,
    proxyProtocol: settings.proxyProtocol,
    slowStart: settings.slowStart,
    threads: settings.workers,
    maxAttempts: settings.health.maxAttempts,
    onRemoval: settings.health.onRemoval,
    drainTimeoutMs: settings.health.drainTimeoutMs,
    onUnhealthy: settings.health.onUnhealthy,
    // Descriptors belong to the process, so each worker accepts on its own duplicate of these.
    inheritedSockets: server.listeners.flatMap((listener) => (listener.inherited === undefined ? [] : [listener.inherited])),
    controlServers: httpServerCount(settings),
  };
  const pool = await WorkerPool.start(settings.workers - 1, options, server, logger);
  poolsByServer.set(server, pool);
  server.onSetApplied((set) => pool.publish(set));
  server.disabled.onChange(() => pool.publishDisabled(server.disabled.ids()));
  // A set applied while the workers were starting went out with no listener registered.
  pool.publish(server.set);
  pool.publishDisabled(server.disabled.ids());

  return pool;
}
