import { resolve } from "node:path";
import type { Address } from "./address.ts";
import { AdminServer } from "./admin-server.ts";
import { BackendSet } from "./backend-set.ts";
import { BackendSetUnion } from "./backend-set-union.ts";
import { collectStatus } from "./balancer-status.ts";
import { ConfigDisabledMarks } from "./config-disabled-marks.ts";
import { FlagShadowedKeysLog } from "./flag-shadowed-entries.ts";
import { collectConfigView, type ConfigFiles } from "./config-view.ts";
import { collectProcessStatus } from "./process-status.ts";
import { BackendStates } from "./backend-states.ts";
import { createClusterProviders } from "./cluster-providers.ts";
import type { CliOptions } from "./cli.ts";
import { controlAddressesOf, createSelfTargetCheck, type OwnAddresses, skipSelfTargets } from "./self-target.ts";
import { checkReloadedConfig, checkStartSettings } from "./start-checks.ts";
import { ListenError } from "./listener.ts";
import type { Logger } from "./logger.ts";
import { renderMetrics } from "./metrics.ts";
import { MetricsServer } from "./metrics-server.ts";
import type { ReadOnlyRouteContext } from "./admin-routes.ts";
import { applyReloadedSettings } from "./reload-settings.ts";
import { AdminApiProvider } from "./providers/admin-api-provider.ts";
import { DnsProvider } from "./providers/dns-provider.ts";
import { FileProvider } from "./providers/file-provider.ts";
import type { Provider } from "./providers/provider.ts";
import { StaticProvider } from "./providers/static-provider.ts";
import type { Server } from "./server.ts";
import { slowStartOf } from "./slow-start-setting.ts";
import type { Settings } from "./settings.ts";
import type { StartDescriptorCount } from "./start-descriptors.ts";
import { relayWorkersOf } from "./worker-pool.ts";
import { StateFile } from "./state-file.ts";

/** The providers of a running balancer, the union they feed, the admin API and the metrics server. */
export interface BackendSources {
  union: BackendSetUnion;
  /** Providers in registration order: static, file, api, DNS, then Kubernetes and etcd. */
  providers: Provider[];
  /** The config file provider, when `--config` is given. */
  file?: FileProvider;
  /** The admin API provider, when the admin API is on. */
  api?: AdminApiProvider;
  /** The admin API server, once started and when it could be bound. */
  admin?: AdminServer;
  /** The metrics server, once started, when `--metrics` sets an address. */
  metrics?: MetricsServer;
  /**
   * Re-reads the config file and the admin token file now (SIGHUP) and retries a failed state
   * file write. Returns false when there is no config file or it was rejected.
   */
  reload(): boolean;
  /**
   * Binds the admin API. A failure to bind the default socket is logged and leaves the
   * admin API off; a failure on an address the user gave throws.
   *
   * @throws {ListenError} when an address given by the user cannot be bound.
   */
  startAdmin(): Promise<void>;
  /**
   * Writes the running set to the state file, and again after each change. Called once the
   * listeners are bound, so that a start that fails leaves the file of the last run as it was.
   */
  startStateFile(): void;
  /**
   * Binds the metrics server, when an address is set.
   *
   * @throws {ListenError} when the address cannot be bound.
   */
  startMetrics(): Promise<void>;
  /** Stops every provider, the admin API and the metrics server. */
  stop(): Promise<void>;
}

/**
 * Creates the providers the settings ask for, seeds the union from the state file and
 * starts them, applying their union to `server`. Providers that publish while starting
 * (static, file, api) are applied as one change; DNS publishes when its first lookup ends.
 * Saved backends, and backends of DNS, Kubernetes and etcd, whose target is one of tinylb's
 * own listen addresses are skipped with a warning. With `descriptorsAtStart`, a reload of the
 * config file is checked against the descriptor limit as a start is.
 *
 * @throws {ConfigError} for a backend whose target is a listen address of this tinylb, an admin
 *   address outside loopback without the flags, a bad token file, a state file path that is in a missing folder, a folder, a file read or a Unix socket, or a kubeconfig or etcd TLS file that cannot be used.
 */
export async function startBackendSources(cli: CliOptions, settings: Settings, server: Server, logger: Logger, descriptorsAtStart?: StartDescriptorCount): Promise<BackendSources> {
  const log = logger.with({ component: "providers" });
  const options = settings.providers;
  // Fail before any listener is bound.
  const credentials = checkStartSettings(settings, cli);
  const listening = (): Address[] => [...settings.listen, ...server.listeners.map((listener) => listener.address)];
  // The admin API and metrics server start after the providers; `controlServers` becomes the sources below.
  let controlServers: Pick<BackendSources, "admin" | "metrics"> = {};
  const own: OwnAddresses = {
    listen: listening,
    control: () => controlAddressesOf(options, { admin: controlServers.admin?.address, metrics: controlServers.metrics?.address }),
  };

  // A provider's first set finds backends that were serving already, so they begin no slow start.
  const union = new BackendSetUnion((set, cause, firstSet) => server.applySet(set, { provider: cause }, { discovery: firstSet }), logger);
  const stateFile = options.stateFile === undefined ? undefined : new StateFile(options.stateFile, logger);
  const saved = stateFile?.load(createSelfTargetCheck(own.listen(), own.control())) ?? new Map<string, BackendSet>();
  const savedApi = saved.get("api");
  if (options.admin === "off" && stateFile !== undefined && savedApi !== undefined) {
    // The admin API's backends exist nowhere but in the state file, so a start without it keeps them there.
    saved.delete("api");
    stateFile.carry("api", savedApi);
    log.info("saved admin API backends are not served while the admin API is off, and stay in the state file", { file: stateFile.path, count: savedApi.size });
  }

  const providers: Provider[] = [];
  let file: FileProvider | undefined;
  let api: AdminApiProvider | undefined;
  // Settings of the last applied config file that differ from the running ones until a restart.
  let pendingRestart: string[] = [];
  // The same changes as `KEY=RUNNING->FILE`, so that each reload warns only about new ones.
  const restartChanges = new Set<string>();
  const configFiles: ConfigFiles = { atStart: settings.file, applied: settings.file };
  const configMarks = new ConfigDisabledMarks(server, (id) => union.outrankingProvider("file", id), logger);
  const shadowedKeys = new FlagShadowedKeysLog(cli, logger);
  if (cli.configPath === undefined) {
    providers.push(new StaticProvider(settings.backends));
  } else {
    providers.push(new StaticProvider(new BackendSet(cli.backends)));
    file = new FileProvider({
      path: cli.configPath,
      watch: options.watchConfig,
      logger,
      onAccepted: (config) => {
        pendingRestart = applyReloadedSettings(config, cli, settings, server, logger, restartChanges);
        configFiles.applied = config;
      },
      check: (config) => checkReloadedConfig(config, cli, own.listen(), descriptorsAtStart),
      startText: settings.fileText,
      onPublished: (config) => {
        configMarks.apply(config);
        shadowedKeys.report(config);
      },
    });
    providers.push(file);
  }
  if (options.admin !== "off") {
    api = new AdminApiProvider(saved.get("api"));
    providers.push(api);
  }
  // Static, file and admin API backends are checked before they are published, and rejected with an error.
  const checked = new Set<Provider>(providers);
  const servers = options.dns.resolvers.length > 0 ? options.dns.resolvers : undefined;
  for (const { name, port } of options.dns.names) {
    providers.push(new DnsProvider({ name, port, servers, intervalMs: options.dns.intervalMs, logger }));
  }
  for (const name of options.dns.srv) {
    providers.push(new DnsProvider({ name, srv: true, servers, intervalMs: options.dns.intervalMs, logger }));
  }
  providers.push(...createClusterProviders(settings, server, logger, credentials));

  const publishers = providers.map((provider) => {
    const publish = union.register(provider.name, provider.health);

    return checked.has(provider) ? publish : skipSelfTargets(provider.name, publish, own, logger);
  });
  await union.batch(providers.map((provider) => provider.name).join(","), async () => {
    for (const [index, provider] of providers.entries()) {
      await provider.start(publishers[index]!);
    }
    if (saved.size > 0) {
      const { unknown, superseded } = union.seed(saved);
      if (unknown.length > 0) {
        log.info("saved backends of providers no longer configured are ignored", { file: stateFile?.path, providers: unknown.join(",") });
      }
      if (superseded.length > 0) {
        log.info("saved backends are replaced by the providers' current sets", { file: stateFile?.path, providers: superseded.join(",") });
      }
    }
  });
  if (stateFile !== undefined) {
    restoreDisabledMarks(stateFile, server, log);
  }

  const readOnly: ReadOnlyRouteContext = {
    union,
    status: (lateWorkers) => ({ process: collectProcessStatus(file, pendingRestart), ...collectStatus(server, union, lateWorkers) }),
    metrics: (lateWorkers) => renderMetrics({ server, union, reloads: file, lateWorkers, controlRejections: { admin: controlServers.admin?.rejectedConnections ?? 0, metrics: controlServers.metrics?.rejectedConnections ?? 0 } }),
    // Looked up at each read, because the relay workers start after the sources.
    refreshCounters: async () => relayWorkersOf(server)?.refreshCounters(),
    shuttingDown: () => server.shuttingDown,
  };
  const sources: BackendSources = {
    union,
    providers,
    file,
    api,
    reload: () => {
      let accepted = false;
      if (file === undefined) {
        log.info("SIGHUP received but no --config file is set; nothing to reload");
      } else {
        accepted = file.reload("SIGHUP");
      }
      // After the reload, so that a set it changed is written at once too.
      stateFile?.flush();
      sources.admin?.reloadToken();

      return accepted;
    },
    startAdmin: async () => {
      if (api === undefined || options.admin === "off") {
        return;
      }
      try {
        sources.admin = await AdminServer.start({
          address: options.admin,
          allowPublic: options.adminAllowPublic,
          tokenFile: options.adminTokenFile,
          context: {
            ...readOnly,
            api,
            states: new BackendStates(server, logger),
            listenAddresses: () => server.listeners.map((listener) => listener.address),
            controlAddresses: own.control,
            settled: async () => relayWorkersOf(server)?.synced(),
            slowStartMs: (id) => slowStartWindowOf(server, id),
            config: () => collectConfigView(settings, cli, configFiles, pendingRestart),
            configFile: cli.configPath === undefined ? undefined : resolve(cli.configPath),
          },
          logger,
        });
      } catch (error) {
        if (!(error instanceof ListenError) || !options.adminIsDefault) {
          throw error;
        }
        log.warn("admin API not started; pass --admin ADDR to pick another address, or --admin off", { err: error });
      }
    },
    startStateFile: () => {
      if (stateFile !== undefined) {
        const providerOf = (id: string): string | undefined => union.providerOf(id);
        const isDisabled = (id: string): boolean => server.disabled.originOf(id) === "admin";
        stateFile.save(union.set, providerOf, isDisabled);
        union.onChange((set) => stateFile.saveSoon(set, providerOf, isDisabled));
        server.disabled.onChange(() => stateFile.saveSoon(union.set, providerOf, isDisabled));
      }
    },
    startMetrics: async () => {
      if (options.metrics !== "off") {
        sources.metrics = await MetricsServer.start({ address: options.metrics, context: readOnly, logger });
      }
    },
    stop: async () => {
      for (const provider of providers) {
        await provider.stop();
      }
      await sources.admin?.stop();
      await sources.metrics?.stop();
      stateFile?.close();
    },
  };

  controlServers = sources;

  return sources;
}

/**
 * Disables again the backends that the state file saved as disabled by `tinylb disable`, when
 * their id is in the running set. Marks of ids that left the set are dropped, as HAProxy
 * drops the saved state of servers that are no longer configured.
 */
function restoreDisabledMarks(stateFile: StateFile, server: Server, log: Logger): void {
  const saved = stateFile.savedDisabledIds();
  const restored = saved.filter((id) => server.set.get(id) !== undefined);
  const dropped = saved.filter((id) => server.set.get(id) === undefined);
  for (const id of restored) {
    server.disabled.disable(id, "admin");
  }
  if (restored.length > 0) {
    log.info("backends disabled again as the state file saved them; tinylb enable puts them back", { file: stateFile.path, disabled: restored.join(",") });
  }
  if (dropped.length > 0) {
    log.info("saved disabled marks of backends no longer in the set are dropped", { file: stateFile.path, backends: dropped.join(",") });
  }
}

/** Returns the window of the slow start that backend `id` is in, in milliseconds, or undefined outside one. */
function slowStartWindowOf(server: Server, id: string): number | undefined {
  const backend = server.set.get(id);
  if (backend === undefined || server.slowStart.remainingMs(backend) === undefined) {
    return undefined;
  }

  return slowStartOf(server.slowStart.settings, id);
}
