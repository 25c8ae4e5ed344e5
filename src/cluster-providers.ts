/** Construction of the Kubernetes and etcd providers from the `kubernetes` and `etcd` config sections. */
import type { Address } from "./address.ts";
import type { EtcdSettings, KubernetesSettings } from "./cluster-provider-keys.ts";
import { ConfigError } from "./config.ts";
import type { Logger } from "./logger.ts";
import type { EtcdTls } from "./providers/etcd-gateway.ts";
import { EtcdProvider } from "./providers/etcd-provider.ts";
import { type KubernetesAccess, loadInClusterAccess, loadKubeconfig } from "./providers/kubernetes-access.ts";
import { KubernetesProvider } from "./providers/kubernetes-provider.ts";
import type { ApiRoute } from "./providers/kubernetes-watch.ts";
import type { Provider } from "./providers/provider.ts";
import { sleepUnlessAborted } from "./providers/reconnect-backoff.ts";
import type { Server } from "./server.ts";
import { describeKeyFileReadError } from "./file-errors.ts";
import { MAX_PEM_FILE_BYTES, readRegularFile } from "./regular-file.ts";

/** How often the Kubernetes provider checks whether the seed backends are up. */
const SEED_POLL_MS = 100;

/** How long the Kubernetes provider waits for seeds before it logs that it is waiting. */
const SEED_WAIT_LOG_MS = 2000;

/** The Kubernetes and etcd sections of the settings. */
type ClusterSettings = { kubernetes?: KubernetesSettings; etcd?: EtcdSettings };

/** Credentials and certificates of the cluster providers, read from the files the settings name. */
export interface ClusterCredentials {
  /** The Kubernetes API access, with `tlsServerName` from the settings applied. */
  kubernetes?: KubernetesAccess;
  etcdTls?: EtcdTls;
}

/**
 * Reads the kubeconfig or service account and the etcd TLS files that the settings name.
 * It only reads files: nothing is resolved or dialled. `configPath`, the config file that
 * sets the `kubernetes` and `etcd` sections, is named when one of their files cannot be read.
 *
 * @throws {ConfigError} when the kubeconfig, service account or a TLS file cannot be used.
 */
export function loadClusterCredentials(settings: ClusterSettings, configPath?: string): ClusterCredentials {
  const credentials: ClusterCredentials = {};
  const kubernetes = settings.kubernetes;
  if (kubernetes !== undefined) {
    const loaded = kubernetes.inCluster ? loadInClusterAccess() : loadKubeconfig(kubernetes.kubeconfig!, kubernetes.context, configPath);
    credentials.kubernetes = { ...loaded, tlsServerName: kubernetes.tlsServerName ?? loaded.tlsServerName };
  }
  const etcd = settings.etcd;
  if (etcd !== undefined) {
    credentials.etcdTls = {
      caPem: readPem(etcd.caFile, "etcd.caFile", configPath),
      certPem: readPem(etcd.certFile, "etcd.certFile", configPath),
      keyPem: readPem(etcd.keyFile, "etcd.keyFile", configPath),
    };
  }

  return credentials;
}

/**
 * Builds the Kubernetes and etcd providers that the settings ask for, with credentials that
 * `loadClusterCredentials` read. Without them, the files are read now, so a bad file stops the start.
 *
 * @throws {ConfigError} when `credentials` is not given and the kubeconfig, service account
 *   or a TLS file cannot be used.
 */
export function createClusterProviders(
  settings: ClusterSettings,
  server: Server,
  logger: Logger,
  credentials: ClusterCredentials = loadClusterCredentials(settings),
): Provider[] {
  const providers: Provider[] = [];
  if (settings.kubernetes !== undefined) {
    if (credentials.kubernetes === undefined) {
      throw new Error("invariant violated: the kubernetes section is set but its credentials were not loaded");
    }
    providers.push(createKubernetesProvider(settings.kubernetes, credentials.kubernetes, server, logger));
  }
  if (settings.etcd !== undefined) {
    const etcd = settings.etcd;
    providers.push(new EtcdProvider({ endpoints: etcd.endpoints, prefix: etcd.prefix, tls: credentials.etcdTls, logger }));
  }

  return providers;
}

function createKubernetesProvider(settings: KubernetesSettings, access: KubernetesAccess, server: Server, logger: Logger): KubernetesProvider {
  if (!settings.viaListener) {
    return new KubernetesProvider({ access, logger });
  }

  return new KubernetesProvider({
    access,
    logger,
    route: () => {
      const route = listenerRoute(server.listeners[0]?.address);
      if (route === undefined) {
        // Falling back to the kubeconfig's server would bypass the listener the user chose.
        throw new Error("tinylb has no bound listener to reach the Kubernetes API through");
      }

      return route;
    },
    waitUntilReady: async (signal) => {
      const startedAt = performance.now();
      let logged = false;
      while (!signal.aborted && (server.listeners.length === 0 || server.set.size === 0)) {
        // Listeners bind and seeds arrive just after the providers start, so only a longer wait is logged.
        if (!logged && performance.now() - startedAt > SEED_WAIT_LOG_MS) {
          logger.info("Kubernetes provider waits for a seed backend, because it reaches the API through tinylb's own listener", { component: "kubernetes-provider" });
          logged = true;
        }
        await sleepUnlessAborted(SEED_POLL_MS, signal);
      }
    },
  });
}

/** Returns the URL that reaches a listener from this host: a wildcard host becomes loopback. */
export function listenerRoute(address: Address | undefined): ApiRoute | undefined {
  if (address === undefined) {
    return undefined;
  }
  if (address.kind === "unix") {
    // The host of the URL is not dialled; the certificate is checked against tlsServerName.
    return { url: "https://localhost", unixPath: address.path };
  }

  let host = address.host;
  if (host === "0.0.0.0") {
    host = "127.0.0.1";
  } else if (host === "::") {
    host = "::1";
  }
  const bracketed = host.includes(":") ? `[${host}]` : host;

  return { url: `https://${bracketed}:${address.port}` };
}

/** Reads the PEM file that config key `key` names; an unreadable file is reported as that key of `configPath`. */
function readPem(path: string | undefined, key: string, configPath: string | undefined): string | undefined {
  if (path === undefined) {
    return undefined;
  }
  try {
    return readRegularFile(path, MAX_PEM_FILE_BYTES).toString("utf8");
  } catch (error) {
    throw new ConfigError(describeKeyFileReadError(error, { path, label: "etcd TLS file", key, configPath }), { cause: error });
  }
}
