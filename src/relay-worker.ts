/**
 * Entry point of a relay worker thread, started by WorkerPool when `--workers` is above 1.
 *
 * A worker runs a Server of its own on the same TCP listen addresses as the main thread
 * (the kernel spreads clients over the listeners with SO_REUSEPORT), with its own pool,
 * rotation and limits. It applies every backend set the main thread applies, so a
 * removed target's connections are closed in every worker, and it sends its traffic
 * counters to the main thread as deltas, which the main thread adds to its own. The worker
 * drops the counters of an id that is no longer used once their last growth was sent. The
 * main thread keeps them for scrapes (see CounterRetention).
 */
import { createBackend } from "./backend.ts";
import { backendIdsInUseOutsideSet } from "./backend-id-usage.ts";
import { BackendSet } from "./backend-set.ts";
import { openTrafficById } from "./balancer-status.ts";
import { systemClock } from "./clock.ts";
import { Logger } from "./logger.ts";
import { Server } from "./server.ts";
import { SlowStart } from "./slow-start.ts";
import { StatsDeltas } from "./stats-deltas.ts";
import { logUncaughtErrors } from "./uncaught-errors.ts";
import { WorkerHealth } from "./worker-health.ts";
import type { LiveSettings, SetCommand, WorkerCommand, WorkerEvent } from "./worker-messages.ts";

declare const self: Worker;

/** Milliseconds between two counter deltas sent to the main thread. */
const STATS_INTERVAL_MS = 1000;

let server: Server | undefined;
let logger: Logger | undefined;
/** The main thread's health state, which the worker's rotation follows. */
const health = new WorkerHealth((result) => post(result));
let statsTimer: Timer | undefined;
const deltas = new StatsDeltas();
// As in the main thread: a worker that ended on an error would close every connection it relays.
logUncaughtErrors(() => logger?.with({ component: "workers" }));

function post(event: WorkerEvent): void {
  self.postMessage(event);
}

/**
 * Sends the counter delta, then drops the counters of ids the worker no longer uses. The drop
 * comes after the post, in the same task, so the delta just sent contains their last growth.
 * `request` is the number of the `stats-request` this delta replies to, if any.
 */
function sendStats(request?: number): void {
  if (server !== undefined) {
    const openById = Object.fromEntries(openTrafficById(server));
    post({ type: "stats", delta: deltas.take(server), open: server.activeCount, openById, idsInUse: backendIdsInUseOutsideSet(server), request });
    deltas.dropUnused(server);
  }
}

async function start(command: WorkerCommand & { type: "start" }): Promise<void> {
  const { index, options, logLevel, logFormat, set } = command;
  logger = new Logger({ level: logLevel, format: logFormat, fields: { worker: index } });
  // The main thread's windows replace this one's with every set and health snapshot.
  const slowStart = new SlowStart(systemClock, logger, false);
  server = new Server({ ...options, logger, reusePort: true, logSetChanges: false, counterRetention: false }, health, slowStart);
  // Before the bind: the kernel hands this thread clients as soon as its listener joins the port.
  applySet(set);
  server.disabled.replace(command.disabled);
  try {
    await server.start();
  } catch (error) {
    post({ type: "start-failed", message: (error as Error).message });

    return;
  }
  statsTimer = setInterval(sendStats, STATS_INTERVAL_MS);
  post({ type: "started" });
}

function applySet(command: SetCommand): void {
  server?.threadCounters?.backendCounts?.learn(command.slots);
  server?.applySet(new BackendSet(command.backends.map((backend) => createBackend(backend.id, backend.target))));
  // In the same task as the set, so no client reaches a backend that joined pending.
  health.apply(command.health);
  server?.slowStart.replace(command.slowStart);
}

function applyLiveSettings(settings: LiveSettings): void {
  server?.updateTimeouts({ connectTimeoutMs: settings.connectTimeoutMs, keepaliveMs: settings.keepaliveMs });
  server?.setIdleTimeout(settings.idleTimeoutMs);
  server?.setBalance(settings.balance);
  server?.setProxyProtocol(settings.proxyProtocol);
  server?.setSlowStart(settings.slowStart);
  if (logger !== undefined) {
    logger.level = settings.logLevel;
    logger.format = settings.logFormat;
  }
}

async function shutdown(graceMs: number): Promise<void> {
  const forced = (await server?.shutdown(graceMs)) ?? 0;
  clearInterval(statsTimer);
  sendStats();
  post({ type: "stopped", forced });
}

self.onmessage = (event: MessageEvent<WorkerCommand>) => {
  const command = event.data;
  switch (command.type) {
    case "start":
      void start(command);
      break;
    case "set":
      applySet(command);
      break;
    case "health":
      health.apply(command.snapshot);
      server?.slowStart.replace(command.snapshot.slowStart);
      break;
    case "live-settings":
      applyLiveSettings(command.settings);
      break;
    case "disabled":
      server?.disabled.replace(command.ids);
      break;
    case "close-all":
      post({ type: "closed", closed: server?.closeAll(command.reason) ?? 0 });
      break;
    case "close-backend":
      post({ type: "closed", closed: server?.closeBackendConnections(command.id, command.reason) ?? 0 });
      break;
    case "sync":
      post({ type: "synced" });
      break;
    case "stats-request":
      sendStats(command.request);
      break;
    case "shutdown":
      void shutdown(command.graceMs);
      break;
  }
};
