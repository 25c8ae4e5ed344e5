import type { Address } from "./address.ts";
import type { Backend } from "./backend.ts";
import { BackendSet } from "./backend-set.ts";
import type { BalanceMode } from "./backend-selector.ts";
import type { CliOptions } from "./cli.ts";
import { ConfigError, type FileConfig, loadConfigText, readConfigText } from "./config.ts";
import { withoutFlagShadowedKeys } from "./flag-shadowed-entries.ts";
import { findListenConflict } from "./listen-conflicts.ts";
import { type HealthSettings, resolveHealthSettings } from "./health-config.ts";
import { checkProbeConfig } from "./probe-config-check.ts";
import type { LogFormat, LogLevel } from "./logger.ts";
import { type ProviderSettings, resolveProviderSettings } from "./provider-settings.ts";
import type { ProxyProtocolSettings } from "./proxy-protocol.ts";
import type { SlowStartSettings } from "./slow-start-setting.ts";
import type { EtcdSettings, KubernetesSettings } from "./cluster-provider-keys.ts";

/** The settings a balancer runs with, after flags, file and defaults are merged. */
export interface Settings {
  listen: Address[];
  backends: BackendSet;
  connectTimeoutMs: number;
  keepaliveMs: number;
  shutdownGraceMs: number;
  /** Milliseconds a connection may carry no byte before it is closed; 0 is off. */
  idleTimeoutMs: number;
  /** 0 means no cap. */
  maxConnections: number;
  /** 0 means no cap. */
  maxConnectionsPerBackend: number;
  /** Threads that accept and relay (`--workers` or `workers`). */
  workers: number;
  /** Balance mode of new clients (`--balance` or `balance`). */
  balance: BalanceMode;
  /** Probes, dial back-off, failover and removal policies. */
  health: HealthSettings;
  /** Backends that receive a PROXY protocol header (`--proxy-protocol`, `proxyProtocol`, `backends[].proxyProtocol`). */
  proxyProtocol: ProxyProtocolSettings;
  /** Slow start windows of backends that return (`--slow-start`, `slowStart`, `backends[].slowStart`). */
  slowStart: SlowStartSettings;
  /** The admin API, the metrics server, the config watch, the state file and DNS. */
  providers: ProviderSettings;
  /** The Kubernetes provider, from the config file only. */
  kubernetes?: KubernetesSettings;
  /** The etcd provider, from the config file only. */
  etcd?: EtcdSettings;
  logLevel: LogLevel;
  logFormat: LogFormat;
  /**
   * The config file's own settings as read at start, or none without `--config`. Reloads leave
   * it as it is; `GET /v1/config` reads it to tell a setting from the file from a default.
   */
  file: FileConfig;
  /**
   * The config file's text that `file` was read from, or undefined without `--config`. The
   * file provider publishes the backends of this text at start, so the settings and the
   * backends of the start come from one read.
   */
  fileText?: string;
}

/** Defaults for every setting that has one. */
export const DEFAULTS = {
  connectTimeoutMs: 3000,
  keepaliveMs: 30_000,
  shutdownGraceMs: 10_000,
  idleTimeoutMs: 0,
  maxConnections: 0,
  maxConnectionsPerBackend: 0,
  workers: 1,
  balance: "roundrobin",
  logLevel: "info",
  logFormat: "text",
} as const;

/**
 * Merges the command line with the config file it names (read now) and the defaults.
 * A flag wins over the file; `--backend` flags are added to the file's backends and
 * win on the same id, so the file entry's own keys do not apply to the flag's backend.
 *
 * @throws {ConfigError} when the file is invalid, no listen address is given, two of the
 *   listen, admin API and metrics addresses would clash, or a probe file cannot be read.
 */
export function resolveSettings(cli: CliOptions): Settings {
  if (cli.configPath === undefined) {
    return mergeSettings(cli, {});
  }

  const fileText = readConfigText(cli.configPath);

  return { ...mergeSettings(cli, loadConfigText(cli.configPath, fileText)), fileText };
}

/**
 * Returns the error for settings without a listen address. Without a config file it names
 * --config too, since a new user may not know that the settings can come from a file.
 */
function noListenAddressMessage(cli: CliOptions): string {
  if (cli.configPath !== undefined) {
    return `no listen address: pass --listen ADDR or set listen in ${cli.configPath}`;
  }
  const help = cli.command === "check" ? "tinylb check --help" : "tinylb --help";

  return `no listen address: pass --listen ADDR, or --config FILE for a config file that sets listen; see ${help}`;
}

/**
 * Merges the command line with a config file already read, as `resolveSettings` does. A
 * reload checks a re-read file with it, so that it rejects what a start would.
 *
 * @throws {ConfigError} when no listen address is given, two of the listen, admin API and
 *   metrics addresses would clash, or a probe file cannot be read.
 */
export function mergeSettings(cli: CliOptions, file: FileConfig): Settings {
  const listen = cli.listen.length > 0 ? cli.listen : (file.listen ?? []);
  if (listen.length === 0) {
    throw new ConfigError(noListenAddressMessage(cli));
  }

  const providers = resolveProviderSettings(cli.providers ?? {}, file.providers);
  const listenSetting = cli.listen.length > 0 ? "--listen" : "listen";
  const binds = listen.map((address) => ({ setting: listenSetting, address }));
  if (providers.admin !== "off") {
    binds.push({ setting: "admin API", address: providers.admin });
  }
  if (providers.metrics !== "off") {
    binds.push({ setting: cli.providers?.metrics === undefined ? "metrics" : "--metrics", address: providers.metrics });
  }
  const conflict = findListenConflict(binds);
  if (conflict !== undefined) {
    throw new ConfigError(conflict);
  }
  checkProbeConfig(cli.health, file.health, cli.configPath);
  const applied = withoutFlagShadowedKeys(file, cli);

  return {
    listen,
    backends: mergeBackends(file.backends ?? [], cli.backends),
    connectTimeoutMs: cli.connectTimeoutMs ?? file.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
    keepaliveMs: cli.keepaliveMs ?? file.keepaliveMs ?? DEFAULTS.keepaliveMs,
    shutdownGraceMs: cli.shutdownGraceMs ?? file.shutdownGraceMs ?? DEFAULTS.shutdownGraceMs,
    idleTimeoutMs: cli.idleTimeoutMs ?? file.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs,
    maxConnections: cli.maxConnections ?? file.maxConnections ?? DEFAULTS.maxConnections,
    maxConnectionsPerBackend: cli.maxConnectionsPerBackend ?? file.maxConnectionsPerBackend ?? DEFAULTS.maxConnectionsPerBackend,
    workers: cli.workers ?? file.workers ?? DEFAULTS.workers,
    balance: cli.balance ?? file.balance ?? DEFAULTS.balance,
    health: resolveHealthSettings(cli.health, applied.health),
    proxyProtocol: resolveProxyProtocol(cli, applied),
    slowStart: resolveSlowStart(cli, applied),
    providers,
    kubernetes: file.kubernetes,
    etcd: file.etcd,
    logLevel: cli.logLevel ?? file.logLevel ?? DEFAULTS.logLevel,
    logFormat: cli.logFormat ?? file.logFormat ?? DEFAULTS.logFormat,
    file,
  };
}

/**
 * Merges the PROXY protocol mode of the flag, the file and the default `off`. A backend's own
 * mode in the file wins over both, for that backend only.
 */
export function resolveProxyProtocol(cli: CliOptions, file: FileConfig): ProxyProtocolSettings {
  return { mode: cli.proxyProtocol ?? file.proxyProtocol ?? "off", byId: file.backendProxyProtocols ?? new Map() };
}

/**
 * Merges the slow start window of the flag, the file and the default `off`. A backend's own
 * window in the file wins over both, for that backend only.
 */
export function resolveSlowStart(cli: CliOptions, file: FileConfig): SlowStartSettings {
  return { durationMs: cli.slowStartMs ?? file.slowStartMs ?? 0, byId: file.backendSlowStarts ?? new Map() };
}

/** Builds one set from the file's backends and the flags' backends; a flag wins on the same id. */
export function mergeBackends(fromFile: readonly Backend[], fromFlags: readonly Backend[]): BackendSet {
  const byId = new Map<string, Backend>();
  for (const backend of [...fromFile, ...fromFlags]) {
    byId.set(backend.id, backend);
  }

  return new BackendSet(byId.values());
}
