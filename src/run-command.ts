import { type Address, formatAddress } from "./address.ts";
import type { BackendSet } from "./backend-set.ts";
import type { CliOptions } from "./cli.ts";
import { ConfigError, loadConfigFile } from "./config.ts";
import { checkDescriptorLimit } from "./descriptor-budget.ts";
import { formatDuration } from "./duration.ts";
import { resolveHealthSettings } from "./health-config.ts";
import type { Logger } from "./logger.ts";
import { Server } from "./server.ts";
import { mergeBackends, resolveSettings, type Settings } from "./settings.ts";
import { runtimeFields } from "./version.ts";

/** A running balancer process: the server plus its signal handling and reloads. */
export interface RunningBalancer {
  server: Server;
  /** Re-reads the config file and applies its backend set; returns false when it was rejected. */
  reload(): boolean;
  /** Resolves with the exit code once the balancer has shut down. */
  exited: Promise<number>;
}

/**
 * Starts the balancer the command line describes and wires SIGHUP (reload), SIGTERM and
 * SIGINT (graceful stop; a second one closes everything at once).
 *
 * @throws {ConfigError} for an invalid config file or missing listen address.
 * @throws {ListenError} when a listener cannot be bound.
 */
export async function runBalancer(cli: CliOptions, logger: Logger): Promise<RunningBalancer> {
  const settings = resolveSettings(cli);
  logger.level = settings.logLevel;
  logger.format = settings.logFormat;
  const log = logger.with({ component: "main" });

  const server = new Server({
    listen: settings.listen,
    connectTimeoutMs: settings.connectTimeoutMs,
    keepaliveMs: settings.keepaliveMs,
    maxConnections: settings.maxConnections,
    maxConnectionsPerBackend: settings.maxConnectionsPerBackend,
    health: settings.health.check,
    maxAttempts: settings.health.maxAttempts,
    onRemoval: settings.health.onRemoval,
    drainTimeoutMs: settings.health.drainTimeoutMs,
    onUnhealthy: settings.health.onUnhealthy,
    logger,
  });
  server.applySet(settings.backends);
  await server.start();
  log.info("tinylb started", {
    listeners: server.listeners.map((listener) => listener.name).join(","),
    connectTimeout: formatDuration(settings.connectTimeoutMs),
    keepalive: formatDuration(settings.keepaliveMs),
  });
  log.debug("runtime", runtimeFields());
  checkDescriptorLimit(settings.maxConnections, log);

  const reload = (): boolean => reloadConfig(cli, settings, server, log);
  const exited = waitForStop(server, settings, log);
  process.on("SIGHUP", () => {
    if (cli.configPath === undefined) {
      log.info("SIGHUP received but no --config file is set; nothing to reload");

      return;
    }
    reload();
  });

  return { server, reload, exited };
}

function reloadConfig(cli: CliOptions, settings: Settings, server: Server, log: Logger): boolean {
  const path = cli.configPath;
  if (path === undefined) {
    return false;
  }

  let set: BackendSet;
  try {
    const file = loadConfigFile(path);
    set = mergeBackends(file.backends ?? [], cli.backends);
    // Probe settings follow the file; the failover and removal policies need a restart.
    server.health.configure(resolveHealthSettings(cli.health, file.health).check);
    if (cli.listen.length === 0 && file.listen !== undefined && !sameListen(file.listen, settings.listen)) {
      log.warn("listen addresses changed in the config file; restart tinylb to apply them", { file: path });
    }
  } catch (error) {
    if (!(error instanceof ConfigError)) {
      throw error;
    }
    log.warn("config reload rejected; keeping the running backend set", { file: path, err: error.message });

    return false;
  }

  const changed = server.applySet(set);
  log.info(changed ? "config reloaded" : "config reloaded; backend set unchanged", { file: path, count: set.size });

  return true;
}

function sameListen(a: readonly Address[], b: readonly Address[]): boolean {
  const names = (addresses: readonly Address[]): string => addresses.map(formatAddress).sort().join(" ");

  return names(a) === names(b);
}

function waitForStop(server: Server, settings: Settings, log: Logger): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) {
        const closed = server.closeAll("second stop signal");
        log.warn(`${signal} received again; closed every connection`, { closed });

        return;
      }
      stopping = true;
      log.info(`${signal} received; draining`, { open: server.activeCount, grace: formatDuration(settings.shutdownGraceMs) });
      void server.shutdown(settings.shutdownGraceMs).then((forced) => {
        log.info("tinylb stopped", { closedAtDeadline: forced });
        resolve(0);
      });
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
  });
}
