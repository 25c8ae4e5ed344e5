import { resolve } from "node:path";
import { formatAddress } from "./address.ts";
import type { CliOptions } from "./cli.ts";
import type { FileConfig } from "./config.ts";
import { formatDuration } from "./duration.ts";
import { HEALTH_DEFAULTS } from "./health-config.ts";
import { PROBE_FIELD_DEFAULTS, probeFieldApplies, probeFields, type SettingValue } from "./probe-fields.ts";
import { defaultProbeTimeoutMs, PROBE_DEFAULTS } from "./probes/probe.ts";
import { DEFAULT_DNS_INTERVAL_MS } from "./provider-settings.ts";
import { formatSlowStart } from "./slow-start-setting.ts";
import type { Settings } from "./settings.ts";

/** The origin of a setting's running value: a flag, the config file, or the built-in default. */
export type SettingSource = "default" | "flag" | "file";

/** One setting in effect, by its config file key, such as `probe.interval`. */
export interface SettingEntry {
  key: string;
  value: SettingValue;
  source: SettingSource;
}

/** A backend's own settings from the config file (`backends[].probe`, `slowStart`, `proxyProtocol`, `disabled`). */
export interface BackendOverrides {
  id: string;
  settings: SettingEntry[];
}

/** `GET /v1/config`: the settings in effect after flags, the config file, defaults and reloads. */
export interface ConfigView {
  /** Absolute path of the `--config` file, or null without one. */
  configFile: string | null;
  settings: SettingEntry[];
  /** Backends with settings of their own, sorted by id. */
  backendOverrides: BackendOverrides[];
  /** Keys that the config file changed but that keep their running value until a restart. */
  pendingRestart: string[];
}

/** The config file as read at start, and as last applied by a reload (the same object before any). */
export interface ConfigFiles {
  atStart: FileConfig;
  applied: FileConfig;
}

/** A setting's running value, and its value from the flags and from a config file (undefined where unset). */
interface SettingSpec {
  key: string;
  running: SettingValue;
  flag: unknown;
  file: (file: FileConfig) => unknown;
}

/**
 * Collects the settings in effect. A flag wins over the file, so a key a flag sets reads
 * `flag`. Otherwise it reads `file` when the config file that gave the running value sets
 * it: the applied file, or the file read at start for a key in `pendingRestart`.
 * Paths of token, key and certificate files are listed, never their content.
 */
export function collectConfigView(settings: Settings, cli: CliOptions, files: ConfigFiles, pendingRestart: readonly string[]): ConfigView {
  const sourceOf = (spec: SettingSpec): SettingSource => {
    if (spec.flag !== undefined) {
      return "flag";
    }
    const file = pendingRestart.includes(spec.key.split(".")[0]!) ? files.atStart : files.applied;

    return spec.file(file) === undefined ? "default" : "file";
  };
  const entries = [...balancerSpecs(settings, cli), ...probeSpecs(settings, cli), ...providerSpecs(settings, cli), ...clusterSpecs(settings)];

  return {
    configFile: cli.configPath === undefined ? null : resolve(cli.configPath),
    settings: entries.map((spec) => ({ key: spec.key, value: spec.running, source: sourceOf(spec) })),
    backendOverrides: collectBackendOverrides(settings, files.applied.disabledBackends ?? []),
    pendingRestart: [...pendingRestart],
  };
}

function balancerSpecs(settings: Settings, cli: CliOptions): SettingSpec[] {
  const health = settings.health;

  return [
    { key: "listen", running: settings.listen.map(formatAddress), flag: cli.listen.length > 0 ? cli.listen : undefined, file: (file) => file.listen },
    { key: "connectTimeout", running: formatDuration(settings.connectTimeoutMs), flag: cli.connectTimeoutMs, file: (file) => file.connectTimeoutMs },
    { key: "keepalive", running: formatDuration(settings.keepaliveMs), flag: cli.keepaliveMs, file: (file) => file.keepaliveMs },
    { key: "shutdownGrace", running: formatDuration(settings.shutdownGraceMs), flag: cli.shutdownGraceMs, file: (file) => file.shutdownGraceMs },
    { key: "idleTimeout", running: settings.idleTimeoutMs === 0 ? "off" : formatDuration(settings.idleTimeoutMs), flag: cli.idleTimeoutMs, file: (file) => file.idleTimeoutMs },
    { key: "maxConnections", running: settings.maxConnections, flag: cli.maxConnections, file: (file) => file.maxConnections },
    { key: "maxConnectionsPerBackend", running: settings.maxConnectionsPerBackend, flag: cli.maxConnectionsPerBackend, file: (file) => file.maxConnectionsPerBackend },
    { key: "workers", running: settings.workers, flag: cli.workers, file: (file) => file.workers },
    { key: "balance", running: settings.balance, flag: cli.balance, file: (file) => file.balance },
    { key: "proxyProtocol", running: settings.proxyProtocol.mode, flag: cli.proxyProtocol, file: (file) => file.proxyProtocol },
    { key: "slowStart", running: formatSlowStart(settings.slowStart.durationMs), flag: cli.slowStartMs, file: (file) => file.slowStartMs },
    { key: "dialBackoff", running: formatDuration(health.check.backoffMs ?? HEALTH_DEFAULTS.backoffMs), flag: cli.health?.backoffMs, file: (file) => file.health?.backoffMs },
    { key: "maxDialBackoff", running: formatDuration(health.check.maxBackoffMs ?? HEALTH_DEFAULTS.maxBackoffMs), flag: cli.health?.maxBackoffMs, file: (file) => file.health?.maxBackoffMs },
    { key: "maxAttempts", running: health.maxAttempts, flag: cli.health?.maxAttempts, file: (file) => file.health?.maxAttempts },
    { key: "onRemoval", running: health.onRemoval, flag: cli.health?.onRemoval, file: (file) => file.health?.onRemoval },
    // The file rejects drainTimeout unless removed targets drain, so the view leaves it out too.
    ...(health.onRemoval === "drain"
      ? [{ key: "drainTimeout", running: formatDuration(health.drainTimeoutMs), flag: cli.health?.drainTimeoutMs, file: (file: FileConfig) => file.health?.drainTimeoutMs }]
      : []),
    { key: "onUnhealthy", running: health.onUnhealthy, flag: cli.health?.onUnhealthy, file: (file) => file.health?.onUnhealthy },
    { key: "logLevel", running: settings.logLevel, flag: cli.logLevel, file: (file) => file.logLevel },
    { key: "logFormat", running: settings.logFormat, flag: cli.logFormat, file: (file) => file.logFormat },
  ];
}

/**
 * Lists the keys of the shared probe that its kind uses, with their defaults where neither a
 * flag nor the file sets them. Without any shared probe key it is one entry, `probe`, with a
 * null value, as for an absent `kubernetes` or `etcd` section.
 */
function probeSpecs(settings: Settings, cli: CliOptions): SettingSpec[] {
  const probe = settings.health.check.probe;
  const running = probeFields(probe);
  if (running.size === 0) {
    return [{ key: "probe", running: null, flag: undefined, file: () => undefined }];
  }
  const flags = probeFields(cli.health?.probe);
  // Without a shared kind (only backends set one), every key is listed, and the kind as null.
  const kind = probe?.kind;
  const names = [...PROBE_FIELD_DEFAULTS.keys()].filter((name) => kind === undefined || probeFieldApplies(name, kind));
  const fallbacks = new Map(PROBE_FIELD_DEFAULTS);
  fallbacks.set("kind", null);
  fallbacks.set("timeout", formatDuration(defaultProbeTimeoutMs(probe?.intervalMs ?? PROBE_DEFAULTS.intervalMs)));

  return names.map((name) => ({
    key: `probe.${name}`,
    running: running.get(name) ?? fallbacks.get(name) ?? null,
    flag: flags.get(name),
    file: (file) => probeFields(file.health?.probe).get(name),
  }));
}

function providerSpecs(settings: Settings, cli: CliOptions): SettingSpec[] {
  const providers = settings.providers;
  const flags = cli.providers ?? {};
  const nonEmpty = <T>(list: T[] | undefined): T[] | undefined => (list === undefined || list.length === 0 ? undefined : list);
  const address = (value: typeof providers.admin): string => (value === "off" ? "off" : formatAddress(value));

  return [
    { key: "admin", running: address(providers.admin), flag: flags.admin, file: (file) => file.providers?.admin },
    { key: "adminAllowPublic", running: providers.adminAllowPublic, flag: flags.adminAllowPublic, file: (file) => file.providers?.adminAllowPublic },
    { key: "adminTokenFile", running: providers.adminTokenFile ?? null, flag: flags.adminTokenFile, file: (file) => file.providers?.adminTokenFile },
    { key: "metrics", running: address(providers.metrics), flag: flags.metrics, file: (file) => file.providers?.metrics },
    { key: "watchConfig", running: providers.watchConfig, flag: flags.watchConfig, file: (file) => file.providers?.watchConfig },
    { key: "stateFile", running: providers.stateFile ?? null, flag: flags.stateFile, file: (file) => file.providers?.stateFile },
    { key: "dns.names", running: providers.dns.names.map(({ name, port }) => `${name}:${port}`), flag: nonEmpty(flags.dns), file: (file) => file.providers?.dns },
    { key: "dns.srv", running: providers.dns.srv, flag: nonEmpty(flags.dnsSrv), file: (file) => file.providers?.dnsSrv },
    { key: "dns.resolver", running: providers.dns.resolvers, flag: nonEmpty(flags.dnsResolvers), file: (file) => file.providers?.dnsResolvers },
    { key: "dns.interval", running: formatDuration(providers.dns.intervalMs ?? DEFAULT_DNS_INTERVAL_MS), flag: flags.dnsIntervalMs, file: (file) => file.providers?.dnsIntervalMs },
  ];
}

/** Lists the keys of the `kubernetes` and `etcd` sections, which only the config file sets. An absent section is one entry with a null value. */
function clusterSpecs(settings: Settings): SettingSpec[] {
  const kubernetes = settings.kubernetes;
  const etcd = settings.etcd;
  // A key of a section the file sets reads `file` only when the file sets that key too.
  const fromFile =
    (section: "kubernetes" | "etcd", key?: string) =>
    (file: FileConfig): unknown => {
      const values = file[section] as Record<string, unknown> | undefined;

      return key === undefined ? values : values?.[key];
    };
  const kubernetesSpecs: SettingSpec[] =
    kubernetes === undefined
      ? [{ key: "kubernetes", running: null, flag: undefined, file: fromFile("kubernetes") }]
      : [
          { key: "kubernetes.kubeconfig", running: kubernetes.kubeconfig ?? null, flag: undefined, file: fromFile("kubernetes", "kubeconfig") },
          // The schema fills in both booleans, so only a value other than the default shows that the file set it.
          { key: "kubernetes.inCluster", running: kubernetes.inCluster, flag: undefined, file: (file) => (file.kubernetes?.inCluster === true ? true : undefined) },
          { key: "kubernetes.context", running: kubernetes.context ?? null, flag: undefined, file: fromFile("kubernetes", "context") },
          { key: "kubernetes.viaListener", running: kubernetes.viaListener, flag: undefined, file: (file) => (file.kubernetes?.viaListener === false ? false : undefined) },
          { key: "kubernetes.tlsServerName", running: kubernetes.tlsServerName ?? null, flag: undefined, file: fromFile("kubernetes", "tlsServerName") },
        ];
  const etcdSpecs: SettingSpec[] =
    etcd === undefined
      ? [{ key: "etcd", running: null, flag: undefined, file: fromFile("etcd") }]
      : [
          { key: "etcd.endpoints", running: etcd.endpoints, flag: undefined, file: fromFile("etcd", "endpoints") },
          { key: "etcd.prefix", running: etcd.prefix, flag: undefined, file: fromFile("etcd", "prefix") },
          { key: "etcd.caFile", running: etcd.caFile ?? null, flag: undefined, file: fromFile("etcd", "caFile") },
          { key: "etcd.certFile", running: etcd.certFile ?? null, flag: undefined, file: fromFile("etcd", "certFile") },
          { key: "etcd.keyFile", running: etcd.keyFile ?? null, flag: undefined, file: fromFile("etcd", "keyFile") },
        ];

  return [...kubernetesSpecs, ...etcdSpecs];
}

/**
 * Lists each backend's own probe keys, slow start, PROXY protocol mode and `disabled: true`, all
 * from the config file. `disabled` is the file's key: `tinylb status` shows whether the backend
 * is disabled now, since `tinylb enable` overrides the key until a reload changes it.
 */
function collectBackendOverrides(settings: Settings, disabledInFile: readonly string[]): BackendOverrides[] {
  const probes = settings.health.check.probeOverrides ?? new Map();
  const ids = new Set([...probes.keys(), ...settings.slowStart.byId.keys(), ...settings.proxyProtocol.byId.keys(), ...disabledInFile]);

  return [...ids].sort().map((id) => {
    const entries: SettingEntry[] = [...probeFields(probes.get(id))].map(([name, value]) => ({ key: `probe.${name}`, value, source: "file" }));
    const slowStart = settings.slowStart.byId.get(id);
    if (slowStart !== undefined) {
      entries.push({ key: "slowStart", value: formatSlowStart(slowStart), source: "file" });
    }
    const proxyProtocol = settings.proxyProtocol.byId.get(id);
    if (proxyProtocol !== undefined) {
      entries.push({ key: "proxyProtocol", value: proxyProtocol, source: "file" });
    }
    if (disabledInFile.includes(id)) {
      entries.push({ key: "disabled", value: true, source: "file" });
    }

    return { id, settings: entries };
  });
}
