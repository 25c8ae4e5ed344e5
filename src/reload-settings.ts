import { type Address, formatAddress } from "./address.ts";
import type { CliOptions } from "./cli.ts";
import type { FileConfig } from "./config.ts";
import { formatDuration } from "./duration.ts";
import { HEALTH_DEFAULTS, resolveHealthSettings } from "./health-config.ts";
import type { Logger } from "./logger.ts";
import { resolveProviderSettings } from "./provider-settings.ts";
import type { Server } from "./server.ts";
import { sameProxyProtocol } from "./proxy-protocol.ts";
import { DEFAULTS, resolveProxyProtocol, resolveSlowStart, type Settings } from "./settings.ts";
import { formatSlowStart, sameSlowStart, slowStartOf } from "./slow-start-setting.ts";
import { canonicalAddress } from "./socket-table.ts";
import { relayWorkersOf } from "./worker-pool.ts";

/**
 * Applies the settings of a re-read config file that can change while tinylb runs, and warns
 * once per reload about changed settings that need a restart.
 *
 * Applied live: logLevel, logFormat and shutdownGrace, plus connectTimeout, keepalive,
 * balance, proxyProtocol and slowStart for new connections, in every relay thread, and the
 * probe and dial back-off settings.
 * idleTimeout applies to open connections too, in every relay thread.
 * Everything else needs a restart. A setting that a flag sets is never changed by the file.
 * `settings` is updated in place to the running values, so a setting that still differs from
 * the file is warned about again on the next reload.
 *
 * @returns the changed settings that wait for a restart, such as `listen`, for status.
 */
export function applyReloadedSettings(config: FileConfig, cli: CliOptions, settings: Settings, server: Server, logger: Logger): string[] {
  const log = logger.with({ component: "main" });
  const applied: string[] = [];
  const restart: string[] = [];

  const logLevel = cli.logLevel ?? config.logLevel ?? DEFAULTS.logLevel;
  if (logLevel !== settings.logLevel) {
    settings.logLevel = logger.level = logLevel;
    applied.push(`logLevel=${logLevel}`);
  }
  const logFormat = cli.logFormat ?? config.logFormat ?? DEFAULTS.logFormat;
  if (logFormat !== settings.logFormat) {
    settings.logFormat = logger.format = logFormat;
    applied.push(`logFormat=${logFormat}`);
  }
  const shutdownGraceMs = cli.shutdownGraceMs ?? config.shutdownGraceMs ?? DEFAULTS.shutdownGraceMs;
  if (shutdownGraceMs !== settings.shutdownGraceMs) {
    settings.shutdownGraceMs = shutdownGraceMs;
    applied.push(`shutdownGrace=${formatDuration(shutdownGraceMs)}`);
  }
  applyTimeouts(config, cli, settings, server, applied);
  applyIdleTimeout(config, cli, settings, server, applied);
  const balance = cli.balance ?? config.balance ?? DEFAULTS.balance;
  if (balance !== settings.balance) {
    server.setBalance(balance);
    settings.balance = balance;
    applied.push(`balance=${balance}`);
  }
  applyHealthChecks(config, cli, settings, server, applied);
  applyProxyProtocol(config, cli, settings, server, applied);
  applySlowStart(config, cli, settings, server, applied);

  for (const key of ["maxConnections", "maxConnectionsPerBackend", "workers"] as const) {
    if ((cli[key] ?? config[key] ?? DEFAULTS[key]) !== settings[key]) {
      restart.push(key);
    }
  }
  if (cli.listen.length === 0 && config.listen !== undefined && !sameAddresses(config.listen, settings.listen)) {
    restart.push("listen");
    warnPassedSocketsLeft(config.listen, server, log, cli.configPath);
  }
  restart.push(...changedRestartSettings(config, cli, settings));
  relayWorkersOf(server)?.applyLiveSettings(settings);

  if (applied.length > 0) {
    log.info("settings changed in the config file applied", { file: cli.configPath, applied: applied.join(",") });
  }
  if (restart.length > 0) {
    log.warn("settings changed in the config file need a restart; the running values stay", { file: cli.configPath, settings: restart.join(",") });
  }

  return restart;
}

function applyTimeouts(config: FileConfig, cli: CliOptions, settings: Settings, server: Server, applied: string[]): void {
  const connectTimeoutMs = cli.connectTimeoutMs ?? config.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
  const keepaliveMs = cli.keepaliveMs ?? config.keepaliveMs ?? DEFAULTS.keepaliveMs;
  const changed: string[] = [];
  if (connectTimeoutMs !== settings.connectTimeoutMs) {
    changed.push(`connectTimeout=${formatDuration(connectTimeoutMs)}`);
  }
  if (keepaliveMs !== settings.keepaliveMs) {
    changed.push(`keepalive=${formatDuration(keepaliveMs)}`);
  }
  if (changed.length === 0) {
    return;
  }
  server.updateTimeouts({ connectTimeoutMs, keepaliveMs });
  settings.connectTimeoutMs = connectTimeoutMs;
  settings.keepaliveMs = keepaliveMs;
  applied.push(...changed);
}

/** Applies the idle timeout to the open connections and to those accepted later (see Server.setIdleTimeout). */
function applyIdleTimeout(config: FileConfig, cli: CliOptions, settings: Settings, server: Server, applied: string[]): void {
  const idleTimeoutMs = cli.idleTimeoutMs ?? config.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs;
  if (idleTimeoutMs === settings.idleTimeoutMs) {
    return;
  }

  server.setIdleTimeout(idleTimeoutMs);
  settings.idleTimeoutMs = idleTimeoutMs;
  applied.push(`idleTimeout=${idleTimeoutMs === 0 ? "off" : formatDuration(idleTimeoutMs)}`);
}

/**
 * Applies the PROXY protocol modes to clients accepted from now on and to probes. Names the
 * balancer's mode when it changed, and each backend whose own mode changed by its id.
 */
function applyProxyProtocol(config: FileConfig, cli: CliOptions, settings: Settings, server: Server, applied: string[]): void {
  const proxyProtocol = resolveProxyProtocol(cli, config);
  const running = settings.proxyProtocol;
  if (sameProxyProtocol(proxyProtocol, running)) {
    return;
  }

  server.setProxyProtocol(proxyProtocol);
  settings.proxyProtocol = proxyProtocol;
  if (proxyProtocol.mode !== running.mode) {
    applied.push(`proxyProtocol=${proxyProtocol.mode}`);
  }
  applied.push(...changedByIdLines("proxyProtocol", running.byId, proxyProtocol.byId, (id) => proxyProtocol.byId.get(id) ?? proxyProtocol.mode));
}

/**
 * Applies the slow start windows (see Server.setSlowStart). Names the balancer's window when it
 * changed, and each backend whose own window changed by its id.
 */
function applySlowStart(config: FileConfig, cli: CliOptions, settings: Settings, server: Server, applied: string[]): void {
  const slowStart = resolveSlowStart(cli, config);
  const running = settings.slowStart;
  if (sameSlowStart(slowStart, running)) {
    return;
  }

  server.setSlowStart(slowStart);
  settings.slowStart = slowStart;
  if (slowStart.durationMs !== running.durationMs) {
    applied.push(`slowStart=${formatSlowStart(slowStart.durationMs)}`);
  }
  applied.push(...changedByIdLines("slowStart", running.byId, slowStart.byId, (id) => formatSlowStart(slowStartOf(slowStart, id))));
}

/** Describes each backend id whose own value of `key` differs between two maps, as `KEY of ID=VALUE` with `valueOf` the new value. */
function changedByIdLines<T>(key: string, running: ReadonlyMap<string, T>, next: ReadonlyMap<string, T>, valueOf: (id: string) => string): string[] {
  const ids = new Set([...running.keys(), ...next.keys()]);

  return [...ids].sort().flatMap((id) => (running.get(id) === next.get(id) ? [] : [`${key} of ${id}=${valueOf(id)}`]));
}

/**
 * Applies the probe and dial back-off settings; backends whose probe changed restart probing.
 * Names each change: the shared probe by its kind (or off), a backend's own probe by its id.
 */
function applyHealthChecks(config: FileConfig, cli: CliOptions, settings: Settings, server: Server, applied: string[]): void {
  const check = resolveHealthSettings(cli.health, config.health).check;
  const running = settings.health.check;
  server.health.configure(check);
  settings.health.check = check;

  if (JSON.stringify(check.probe ?? {}) !== JSON.stringify(running.probe ?? {})) {
    applied.push(`probe=${check.probe?.kind ?? "off"}`);
  }
  const ids = new Set([...(running.probeOverrides?.keys() ?? []), ...(check.probeOverrides?.keys() ?? [])]);
  for (const id of [...ids].sort()) {
    if (JSON.stringify(check.probeOverrides?.get(id) ?? {}) !== JSON.stringify(running.probeOverrides?.get(id) ?? {})) {
      applied.push(`probe of ${id}`);
    }
  }
  if ((check.backoffMs ?? HEALTH_DEFAULTS.backoffMs) !== (running.backoffMs ?? HEALTH_DEFAULTS.backoffMs)) {
    applied.push(`dialBackoff=${formatDuration(check.backoffMs ?? HEALTH_DEFAULTS.backoffMs)}`);
  }
  if ((check.maxBackoffMs ?? HEALTH_DEFAULTS.maxBackoffMs) !== (running.maxBackoffMs ?? HEALTH_DEFAULTS.maxBackoffMs)) {
    applied.push(`maxDialBackoff=${formatDuration(check.maxBackoffMs ?? HEALTH_DEFAULTS.maxBackoffMs)}`);
  }
}

/** Names the changed settings of the failover policies and the providers, which apply on restart. */
function changedRestartSettings(config: FileConfig, cli: CliOptions, settings: Settings): string[] {
  const changed: string[] = [];
  const health = resolveHealthSettings(cli.health, config.health);
  for (const key of ["maxAttempts", "onRemoval", "drainTimeoutMs", "onUnhealthy"] as const) {
    if (health[key] !== settings.health[key]) {
      changed.push(key === "drainTimeoutMs" ? "drainTimeout" : key);
    }
  }

  const providers = resolveProviderSettings(cli.providers ?? {}, config.providers);
  const running = settings.providers;
  const differs = (a: unknown, b: unknown): boolean => JSON.stringify(a) !== JSON.stringify(b);
  if (differs(providers.admin, running.admin)) {
    changed.push("admin");
  }
  for (const key of ["adminAllowPublic", "adminTokenFile", "metrics", "watchConfig", "stateFile", "dns"] as const) {
    if (differs(providers[key], running[key])) {
      changed.push(key);
    }
  }
  if (differs(config.kubernetes, settings.kubernetes)) {
    changed.push("kubernetes");
  }
  if (differs(config.etcd, settings.etcd)) {
    changed.push("etcd");
  }

  return changed;
}

/**
 * Warns when the new listen addresses leave out a socket the service manager passed. A restart
 * gets the same sockets again, and one that no listen address matches fails the start, so the
 * socket unit must change with the config.
 */
function warnPassedSocketsLeft(listen: readonly Address[], server: Server, log: Logger, file: string | undefined): void {
  const keys = new Set(listen.map(canonicalAddress));
  const left = server.listeners.filter((listener) => listener.inherited !== undefined && !keys.has(listener.inherited.key));
  if (left.length > 0) {
    log.warn("listen in the config file leaves out sockets that the service manager passes; edit their ListenStream= lines in the socket unit before the restart, or the restart fails", {
      file,
      passed: left.map((listener) => listener.name).join(","),
    });
  }
}

function sameAddresses(a: readonly Address[], b: readonly Address[]): boolean {
  const names = (addresses: readonly Address[]): string => addresses.map(formatAddress).sort().join(" ");

  return names(a) === names(b);
}
