import { type Address, formatAddress } from "./address.ts";
import type { CliOptions } from "./cli.ts";
import type { FileConfig } from "./config.ts";
import { formatDuration } from "./duration.ts";
import { withoutFlagShadowedKeys } from "./flag-shadowed-entries.ts";
import { HEALTH_DEFAULTS, resolveHealthSettings } from "./health-config.ts";
import { backendProbeChanges, describeChange, probeChanges } from "./setting-changes.ts";
import type { Logger } from "./logger.ts";
import { resolveProviderSettings } from "./provider-settings.ts";
import { describeRestartChanges } from "./restart-changes.ts";
import type { Server } from "./server.ts";
import { sameProxyProtocol } from "./proxy-protocol.ts";
import { DEFAULTS, resolveProxyProtocol, resolveSlowStart, type Settings } from "./settings.ts";
import { formatSlowStart, sameSlowStart } from "./slow-start-setting.ts";
import { canonicalAddress } from "./socket-table.ts";
import { relayWorkersOf } from "./worker-pool.ts";

/**
 * Applies the settings of a re-read config file that can change while tinylb runs, and warns
 * about changed settings that need a restart.
 *
 * Applied live: logLevel, logFormat and shutdownGrace, plus connectTimeout, keepalive,
 * balance, proxyProtocol and slowStart for new connections, in every relay thread, and the
 * probe and dial back-off settings.
 * idleTimeout applies to open connections too, in every relay thread.
 * Everything else needs a restart, and the warning names each such key with its running and
 * its new value. A setting that a flag sets is never changed by the file.
 * The info line names each applied key with its old and new value, such as
 * `probe.fall=3->2`, and a nested key such as `probe.interval` by its full path.
 * `settings` is updated in place to the running values, so a restart setting still differs
 * from the file at the next reload. The warning names only the changes, such as
 * `workers=1->2`, that the reload before did not find, so an unchanged file is warned about
 * once, and again when its value changes.
 *
 * @param restartChanges the changes that need a restart found by the reload before, replaced
 *   with this reload's. The caller keeps one set for every reload of a balancer.
 * @returns the changed settings that wait for a restart, such as `listen`, for status.
 */
export function applyReloadedSettings(fileConfig: FileConfig, cli: CliOptions, settings: Settings, server: Server, logger: Logger, restartChanges: Set<string>): string[] {
  // A file entry that a --backend flag replaces keeps none of its own keys, as at start.
  const config = withoutFlagShadowedKeys(fileConfig, cli);
  const log = logger.with({ component: "main" });
  const applied: string[] = [];
  const restart: string[] = [];

  const logLevel = cli.logLevel ?? config.logLevel ?? DEFAULTS.logLevel;
  if (logLevel !== settings.logLevel) {
    applied.push(describeChange("logLevel", settings.logLevel, logLevel));
    settings.logLevel = logger.level = logLevel;
  }
  const logFormat = cli.logFormat ?? config.logFormat ?? DEFAULTS.logFormat;
  if (logFormat !== settings.logFormat) {
    applied.push(describeChange("logFormat", settings.logFormat, logFormat));
    settings.logFormat = logger.format = logFormat;
  }
  const shutdownGraceMs = cli.shutdownGraceMs ?? config.shutdownGraceMs ?? DEFAULTS.shutdownGraceMs;
  if (shutdownGraceMs !== settings.shutdownGraceMs) {
    applied.push(describeChange("shutdownGrace", formatDuration(settings.shutdownGraceMs), formatDuration(shutdownGraceMs)));
    settings.shutdownGraceMs = shutdownGraceMs;
  }
  applyTimeouts(config, cli, settings, server, applied);
  applyIdleTimeout(config, cli, settings, server, applied);
  const balance = cli.balance ?? config.balance ?? DEFAULTS.balance;
  if (balance !== settings.balance) {
    server.setBalance(balance);
    applied.push(describeChange("balance", settings.balance, balance));
    settings.balance = balance;
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
    log.info("settings changed in the config file applied", { file: cli.configPath, applied: applied.join(" ") });
  }
  const changes = describeRestartChanges(restart, config, cli, settings);
  const newChanges = changes.filter((change) => !restartChanges.has(change));
  if (newChanges.length > 0) {
    log.warn("settings changed in the config file need a restart; the running values stay", { file: cli.configPath, settings: newChanges.join(" ") });
  }
  restartChanges.clear();
  for (const change of changes) {
    restartChanges.add(change);
  }

  return restart;
}

function applyTimeouts(config: FileConfig, cli: CliOptions, settings: Settings, server: Server, applied: string[]): void {
  const connectTimeoutMs = cli.connectTimeoutMs ?? config.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
  const keepaliveMs = cli.keepaliveMs ?? config.keepaliveMs ?? DEFAULTS.keepaliveMs;
  const changed: string[] = [];
  if (connectTimeoutMs !== settings.connectTimeoutMs) {
    changed.push(describeChange("connectTimeout", formatDuration(settings.connectTimeoutMs), formatDuration(connectTimeoutMs)));
  }
  if (keepaliveMs !== settings.keepaliveMs) {
    changed.push(describeChange("keepalive", formatDuration(settings.keepaliveMs), formatDuration(keepaliveMs)));
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
  const format = (ms: number): string => (ms === 0 ? "off" : formatDuration(ms));
  applied.push(describeChange("idleTimeout", format(settings.idleTimeoutMs), format(idleTimeoutMs)));
  settings.idleTimeoutMs = idleTimeoutMs;
}

/**
 * Applies the PROXY protocol modes to clients accepted from now on and to probes. Names the
 * balancer's mode when it changed, and each backend whose own mode changed by its id
 * (`unset` where it takes the balancer's).
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
    applied.push(describeChange("proxyProtocol", running.mode, proxyProtocol.mode));
  }
  applied.push(...changedByIdLines("proxyProtocol", running.byId, proxyProtocol.byId, (mode) => mode));
}

/**
 * Applies the slow start windows (see Server.setSlowStart). Names the balancer's window when it
 * changed, and each backend whose own window changed by its id (`unset` where it takes the
 * balancer's).
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
    applied.push(describeChange("slowStart", formatSlowStart(running.durationMs), formatSlowStart(slowStart.durationMs)));
  }
  applied.push(...changedByIdLines("slowStart", running.byId, slowStart.byId, formatSlowStart));
}

/** Describes each backend id whose own value of `key` differs between two maps, as `KEY of ID=OLD->NEW`, with `format` writing a value. */
function changedByIdLines<T>(key: string, running: ReadonlyMap<string, T>, next: ReadonlyMap<string, T>, format: (value: T) => string): string[] {
  const ids = new Set([...running.keys(), ...next.keys()]);
  const valueOf = (values: ReadonlyMap<string, T>, id: string): string => (values.has(id) ? format(values.get(id)!) : "unset");

  return [...ids].sort().flatMap((id) => (running.get(id) === next.get(id) ? [] : [describeChange(`${key} of ${id}`, valueOf(running, id), valueOf(next, id))]));
}

/**
 * Applies the probe and dial back-off settings; backends whose probe changed restart probing.
 * Names each changed key with its old and new value, a backend's own probe keys with its id.
 */
function applyHealthChecks(config: FileConfig, cli: CliOptions, settings: Settings, server: Server, applied: string[]): void {
  const check = resolveHealthSettings(cli.health, config.health).check;
  const running = settings.health.check;
  server.health.configure(check);
  settings.health.check = check;

  applied.push(...probeChanges(running.probe, check.probe));
  const ids = new Set([...(running.probeOverrides?.keys() ?? []), ...(check.probeOverrides?.keys() ?? [])]);
  for (const id of [...ids].sort()) {
    applied.push(...backendProbeChanges(id, running.probeOverrides?.get(id), check.probeOverrides?.get(id), { before: running.probe, after: check.probe }));
  }
  const backoff = (ms: number | undefined, fallback: number): string => formatDuration(ms ?? fallback);
  for (const [key, before, after] of [
    ["dialBackoff", backoff(running.backoffMs, HEALTH_DEFAULTS.backoffMs), backoff(check.backoffMs, HEALTH_DEFAULTS.backoffMs)],
    ["maxDialBackoff", backoff(running.maxBackoffMs, HEALTH_DEFAULTS.maxBackoffMs), backoff(check.maxBackoffMs, HEALTH_DEFAULTS.maxBackoffMs)],
  ] as const) {
    if (before !== after) {
      applied.push(describeChange(key, before, after));
    }
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
