import { type BackendSources, startBackendSources } from "./backend-sources.ts";
import type { CliOptions } from "./cli.ts";
import { checkDescriptorLimit } from "./descriptor-budget.ts";
import { httpServerCount } from "./http-connection-cap.ts";
import { ListenLocks } from "./listen-lock.ts";
import { formatDuration } from "./duration.ts";
import type { Logger } from "./logger.ts";
import { describeProxyProtocol } from "./proxy-protocol.ts";
import { describeSlowStart } from "./slow-start-setting.ts";
import { Server } from "./server.ts";
import { ServiceNotifier } from "./service-notifier.ts";
import { ServiceStatus } from "./service-status.ts";
import { matchInheritedSockets, takeInheritedSockets } from "./socket-activation.ts";
import { canonicalAddress } from "./socket-table.ts";
import { checkDescriptorRoom } from "./start-descriptors.ts";
import { relayThreadCount, startRelayWorkers, type WorkerPool } from "./worker-pool.ts";
import { resolveSettings, type Settings } from "./settings.ts";
import { logSettingsWarnings } from "./start-checks.ts";
import { runtimeFields, VERSION } from "./version.ts";

/** A running balancer process: the server plus its signal handling and reloads. */
export interface RunningBalancer {
  server: Server;
  /** The providers, their union, the admin API and the metrics server. */
  sources: BackendSources;
  /** Re-reads the config file and applies its backend set; returns false when it was rejected. */
  reload(): boolean;
  /** Resolves with the exit code once the balancer has shut down. */
  exited: Promise<number>;
}

/**
 * Starts the balancer the command line describes and wires SIGHUP (reload), SIGTERM and
 * SIGINT (graceful stop; a second one closes everything at once).
 *
 * @throws {ConfigError} for an invalid config file or missing listen address, or a socket
 *   from the service manager that matches no listen address.
 * @throws {ListenError} when a listener cannot be bound.
 */
export async function runBalancer(cli: CliOptions, logger: Logger): Promise<RunningBalancer> {
  const settings = resolveSettings(cli);
  logger.level = settings.logLevel;
  logger.format = settings.logFormat;
  const log = logger.with({ component: "main" });
  const notifier = ServiceNotifier.fromEnvironment(log);
  const threads = relayThreadCount(settings);
  const inheritedSockets = matchInheritedSockets(settings.listen, takeInheritedSockets(process.env, process.pid, undefined, log));
  // Before the listen locks, so that it counts the open descriptors that `tinylb check` counts.
  const descriptorsAtStart = checkDescriptorRoom(settings, cli);

  const server = new Server({
    listen: settings.listen,
    connectTimeoutMs: settings.connectTimeoutMs,
    keepaliveMs: settings.keepaliveMs,
    idleTimeoutMs: settings.idleTimeoutMs,
    maxConnections: settings.maxConnections,
    maxConnectionsPerBackend: settings.maxConnectionsPerBackend,
    balance: settings.balance,
    proxyProtocol: settings.proxyProtocol,
    slowStart: settings.slowStart,
    threads,
    health: settings.health.check,
    maxAttempts: settings.health.maxAttempts,
    onRemoval: settings.health.onRemoval,
    drainTimeoutMs: settings.health.drainTimeoutMs,
    onUnhealthy: settings.health.onUnhealthy,
    logger,
    reusePort: threads > 1,
    inheritedSockets,
    controlServers: httpServerCount(settings),
  });
  // The locks keep a second tinylb off these addresses even where listeners share ports (--workers).
  // A socket from the service manager needs none: nothing binds its address.
  const locks = new ListenLocks();
  const inheritedKeys = new Set(inheritedSockets.map((socket) => socket.key));
  locks.acquire(settings.listen.filter((address) => !inheritedKeys.has(canonicalAddress(address))));
  const sources = await startBackendSources(cli, settings, server, logger, descriptorsAtStart);
  const status = new ServiceStatus(server, notifier, () => sources.file?.lastReload);
  let started = false;
  const reload = (): boolean => {
    if (!started) {
      return sources.reload();
    }
    if (server.shuttingDown) {
      // A draining tinylb serves its open connections with the config they started with, and
      // the next start reads the file. A reload that removes backends could close some of them.
      log.info("SIGHUP received while draining; not reloading, since the next start reads the config file");

      return false;
    }

    notifier.reloading();
    const accepted = sources.reload();
    status.ready();

    return accepted;
  };
  // Installed before the listeners and relay workers start, which can take over 100 ms with
  // many workers, so that a reload sent meanwhile is applied rather than ignored.
  process.on("SIGHUP", () => reload());
  let workers: WorkerPool | undefined;
  try {
    await server.start();
    locks.acquire(server.listeners.filter((listener) => listener.inherited === undefined).map((listener) => listener.address));
    sources.startStateFile();
    workers = await startRelayWorkers(settings, server, logger);
    // A reload during the workers' start may have changed `settings` after they got theirs.
    workers?.applyLiveSettings(settings);
    await sources.startAdmin();
    await sources.startMetrics();
  } catch (error) {
    await sources.stop();
    await workers?.shutdown(0);
    server.stopListening();
    locks.release();
    throw error;
  }
  const releaseAddresses = (): void => {
    locks.release();
    sources.metrics?.release();
  };
  const stopping = (): void => {
    // Saves seen by the file watch are not applied during the drain either.
    sources.file?.stop();
    status.stopping();
  };
  const exited = waitForStop(server, workers, settings, releaseAddresses, stopping, log).then(async (code) => {
    status.stop();
    await sources.stop();
    locks.release();

    return code;
  });

  // Logged only now: a supervisor or test that signals on this line must find the handlers in place.
  log.info("tinylb started", {
    version: VERSION,
    listeners: server.listeners.map((listener) => listener.name).join(","),
    connectTimeout: formatDuration(settings.connectTimeoutMs),
    keepalive: formatDuration(settings.keepaliveMs),
    idleTimeout: settings.idleTimeoutMs === 0 ? "off" : formatDuration(settings.idleTimeoutMs),
    balance: settings.balance,
    proxyProtocol: describeProxyProtocol(settings.proxyProtocol),
    slowStart: describeSlowStart(settings.slowStart),
    // The threads that relay: 1 when --workers found no TCP listener to share.
    workers: threads,
  });
  log.debug("runtime", runtimeFields());
  if (server.set.size === 0) {
    log.warn("no backends yet; clients are closed until a provider adds one", { providers: sources.providers.map((provider) => provider.name).join(",") });
  }
  checkDescriptorLimit(settings.maxConnections, httpServerCount(settings), log);
  logSettingsWarnings(settings, logger);
  // NOTE: READY=1 does not wait for the first set of DNS, Kubernetes or etcd, which comes after
  // their first lookup, because a provider that stays down would fail the start at TimeoutStartSec.
  status.ready();
  started = true;

  return { server, sources, reload, exited };
}

/**
 * Drains on the first SIGTERM or SIGINT and closes every connection on the second. The listen
 * locks and the metrics address are released as soon as the listeners stop, so a new tinylb can
 * bind the addresses while this one drains. `stopping` runs once, at the first signal.
 * NOTE: relay workers stop their listeners when their shutdown message arrives, a moment after
 * the locks are released. A new tinylb that binds in that moment fails with EADDRINUSE, with
 * any worker count.
 */
function waitForStop(server: Server, workers: WorkerPool | undefined, settings: Settings, releaseAddresses: () => void, stopping: () => void, log: Logger): Promise<number> {
  return new Promise((resolve) => {
    let draining = false;
    // Settles once every thread reported what the latest repeated signal closed.
    let closing: Promise<unknown> = Promise.resolve();
    const stop = (signal: string): void => {
      if (draining) {
        const closedInWorkers = workers?.closeAll("second stop signal") ?? Promise.resolve(0);
        const closedInMain = server.closeAll("second stop signal");
        const logged = closedInWorkers.then((closed) => log.warn(`${signal} received again; closed every connection`, { closed: closedInMain + closed }));
        closing = Promise.all([closing, logged]);

        return;
      }
      draining = true;
      stopping();
      log.info(`${signal} received; draining`, { open: server.activeCountInAllThreads, grace: formatDuration(settings.shutdownGraceMs) });
      void Promise.all([server.shutdown(settings.shutdownGraceMs), workers?.shutdown(settings.shutdownGraceMs) ?? 0]).then(async ([forced, forcedInWorkers]) => {
        // Log the count of a repeated signal first, so that "tinylb stopped" stays the last line.
        await closing;
        log.info("tinylb stopped", { closedAtDeadline: forced + forcedInWorkers });
        resolve(0);
      });
      // Server.shutdown stopped the listeners before its first await. Only now, not during a
      // descriptor-guard pause, may another tinylb take the addresses.
      releaseAddresses();
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
  });
}
