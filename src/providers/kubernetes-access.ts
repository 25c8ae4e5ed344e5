import { dirname, isAbsolute, join } from "node:path";
import { z } from "zod";
import { ConfigError } from "../config.ts";
import { describeFileError, describeKeyFileReadError } from "../file-errors.ts";
import { MAX_PEM_FILE_BYTES, MAX_TOKEN_FILE_BYTES, readRegularFile } from "../regular-file.ts";
import { maskUrlCredentials } from "../url-credentials.ts";

/**
 * How to reach and authenticate to a Kubernetes API server: its URL, the CA that signs
 * its certificate, and one of a client certificate, a bearer token or a bearer token file.
 */
export interface KubernetesAccess {
  /**
   * Base URL of the API server, such as `https://10.0.0.11:6443`; always https. Bun 1.4.4's fetch
   * sends a user name and password in it as Basic authentication when no bearer token is set.
   * They are masked wherever the URL is logged or shown (maskUrlCredentials).
   */
  server: string;
  /** Name the server certificate is verified against: the kubeconfig's `tls-server-name`, else the URL host. */
  tlsServerName: string;
  /** PEM certificates of the CA that the server certificate must chain to. */
  caPem: string;
  /** Client certificate and key, PEM, for mutual TLS. */
  clientCertificate?: { certPem: string; keyPem: string };
  /** A fixed bearer token. */
  bearerToken?: string;
  /** A file holding the bearer token, read again for every request because tokens rotate. */
  bearerTokenFile?: string;
  /** Origin of the settings, for logs: the kubeconfig path or the service account directory. */
  source: string;
  /**
   * The files read for this access, each with the setting or kubeconfig field that names it,
   * such as `certificate-authority of kubeconfig /etc/tinylb/kubeconfig`.
   */
  files?: { setting: string; path: string }[];
}

/** Directory where Kubernetes mounts a pod's service account token and CA. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** Largest kubeconfig read, in bytes; one with a few embedded certificates has tens of KiB. */
const MAX_KUBECONFIG_BYTES = 1024 * 1024;

const clusterSchema = z.object({
  server: z.string(),
  "certificate-authority": z.string().optional(),
  "certificate-authority-data": z.string().optional(),
  "tls-server-name": z.string().optional(),
  "insecure-skip-tls-verify": z.boolean().optional(),
});

const contextSchema = z.object({ cluster: z.string(), user: z.string().optional() });

const userSchema = z.object({
  "client-certificate": z.string().optional(),
  "client-certificate-data": z.string().optional(),
  "client-key": z.string().optional(),
  "client-key-data": z.string().optional(),
  token: z.string().optional(),
  tokenFile: z.string().optional(),
  exec: z.unknown().optional(),
  "auth-provider": z.unknown().optional(),
});

/** The parts of a kubeconfig file (`kind: Config`) that tinylb reads; other keys are ignored. */
const kubeconfigSchema = z.object({
  "current-context": z.string().optional(),
  clusters: z.array(z.object({ name: z.string(), cluster: clusterSchema })).default([]),
  contexts: z.array(z.object({ name: z.string(), context: contextSchema })).default([]),
  users: z.array(z.object({ name: z.string(), user: userSchema })).default([]),
});

type KubeconfigCluster = z.infer<typeof clusterSchema>;
type KubeconfigUser = z.infer<typeof userSchema>;

/**
 * Reads a kubeconfig file and returns the access of its current context, or of `context`.
 * Relative file paths in it are resolved against the kubeconfig's directory, as kubectl does.
 * With `configPath`, the tinylb config file that names `path`, a file that cannot be read is
 * reported as that file's `kubernetes.kubeconfig` key, as a probe file is.
 *
 * @throws {ConfigError} naming the file and what is wrong: unreadable, no such context,
 *   a plain-http server, `insecure-skip-tls-verify`, no CA, an exec or auth-provider
 *   plugin, or no credentials.
 */
export function loadKubeconfig(path: string, context?: string, configPath?: string): KubernetesAccess {
  const where = `kubeconfig ${path}`;
  let text: string;
  try {
    text = readRegularFile(path, MAX_KUBECONFIG_BYTES).toString("utf8");
  } catch (error) {
    throw new ConfigError(describeKeyFileReadError(error, { path, label: "kubeconfig", key: "kubernetes.kubeconfig", configPath }), { cause: error });
  }
  let data: unknown;
  try {
    data = Bun.YAML.parse(text);
  } catch (error) {
    throw new ConfigError(`read ${where} failed: ${describeReadError(error)}`, { cause: error });
  }

  const parsed = kubeconfigSchema.safeParse(data ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`invalid ${where}: ${issue.path.join(".")}: ${issue.message}`);
  }

  const config = parsed.data;
  const contextName = context ?? config["current-context"];
  if (contextName === undefined || contextName === "") {
    throw new ConfigError(`invalid ${where}: no current-context is set; set one or name a context in the tinylb config`);
  }
  const selected = findNamed(config.contexts, contextName, "context", where).context;
  const cluster = findNamed(config.clusters, selected.cluster, "cluster", where).cluster;
  const user = selected.user === undefined ? {} : findNamed(config.users, selected.user, "user", where).user;

  return {
    ...clusterAccess(cluster, dirname(path), where),
    ...userCredentials(user, dirname(path), where),
    source: path,
    files: [{ setting: "kubernetes.kubeconfig", path }, ...namedFiles(cluster, user, path)],
  };
}

/** Lists the files that the kubeconfig at `path` names and that were read: those whose field has no `-data` form set. */
function namedFiles(cluster: KubeconfigCluster, user: KubeconfigUser, path: string): { setting: string; path: string }[] {
  const fields: [string, string | undefined, string | undefined][] = [
    ["certificate-authority", cluster["certificate-authority"], cluster["certificate-authority-data"]],
    ["client-certificate", user["client-certificate"], user["client-certificate-data"]],
    ["client-key", user["client-key"], user["client-key-data"]],
    ["tokenFile", user.tokenFile, undefined],
  ];

  return fields
    .filter(([, file, data]) => file !== undefined && data === undefined)
    .map(([field, file]) => ({ setting: `${field} of kubeconfig ${path}`, path: resolvePath(dirname(path), file!) }));
}

/**
 * Returns the access a pod has to its own cluster: the API server from
 * `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT`, the service account token (read
 * again for every request) and the service account CA.
 *
 * @throws {ConfigError} when the variables are missing or the token or CA cannot be read.
 */
export function loadInClusterAccess(env: Record<string, string | undefined> = process.env, accountDir = SERVICE_ACCOUNT_DIR): KubernetesAccess {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (host === undefined || host === "" || port === undefined || port === "") {
    throw new ConfigError("in-cluster Kubernetes access failed: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set; run tinylb in a pod or set kubernetes.kubeconfig");
  }

  const where = `service account ${accountDir}`;
  const tokenFile = join(accountDir, "token");
  const caFile = join(accountDir, "ca.crt");
  readText(tokenFile, MAX_TOKEN_FILE_BYTES, where);
  const bracketed = host.includes(":") ? `[${host}]` : host;

  return {
    server: `https://${bracketed}:${port}`,
    tlsServerName: host,
    caPem: readText(caFile, MAX_PEM_FILE_BYTES, where),
    bearerTokenFile: tokenFile,
    source: where,
    files: [
      { setting: "kubernetes.inCluster (the service account token)", path: tokenFile },
      { setting: "kubernetes.inCluster (the service account CA)", path: caFile },
    ],
  };
}

/**
 * Describes the credentials that `access` sends, for the fix of a 401 or 403 response, such as
 * `the token file /var/run/secrets/kubernetes.io/serviceaccount/token of service account ...`
 * or `the client certificate of the user in kubeconfig /etc/tinylb/kubeconfig`.
 */
export function describeCredentials(access: KubernetesAccess): string {
  const origin = access.source.startsWith("service account ") ? access.source : `the user in kubeconfig ${access.source}`;
  if (access.clientCertificate !== undefined) {
    return `the client certificate of ${origin}`;
  }
  if (access.bearerTokenFile !== undefined) {
    return `the token file ${access.bearerTokenFile} of ${origin}`;
  }

  return access.bearerToken === undefined ? `${origin}, which has no token or client certificate` : `the token of ${origin}`;
}

/**
 * Reads the bearer token to send now: the token file's current content, else the fixed token.
 *
 * @throws {Error} when the token file cannot be read or is empty.
 */
export function currentBearerToken(access: KubernetesAccess): string | undefined {
  if (access.bearerTokenFile === undefined) {
    return access.bearerToken;
  }

  const path = access.bearerTokenFile;
  let token: string;
  try {
    token = readRegularFile(path, MAX_TOKEN_FILE_BYTES).toString("utf8").trim();
  } catch (error) {
    // No cause: loggers print causes, and the errno text would repeat this message.
    throw new Error(`read bearer token file ${path} failed: ${describeFileError(error)}`);
  }
  if (token === "") {
    throw new Error(`bearer token file ${path} is empty`);
  }

  return token;
}

function clusterAccess(cluster: KubeconfigCluster, baseDir: string, where: string): Pick<KubernetesAccess, "server" | "tlsServerName" | "caPem"> {
  let url: URL;
  try {
    url = new URL(cluster.server);
  } catch (error) {
    throw new ConfigError(`invalid ${where}: server "${maskUrlCredentials(cluster.server)}" is not a URL`, { cause: error });
  }
  if (url.protocol !== "https:") {
    throw new ConfigError(`invalid ${where}: server "${maskUrlCredentials(cluster.server)}" must use https, because tinylb sends credentials to it`);
  }
  if (cluster["insecure-skip-tls-verify"] === true) {
    throw new ConfigError(`invalid ${where}: insecure-skip-tls-verify is not supported; give certificate-authority or certificate-authority-data`);
  }

  const caPem = pemFrom(cluster["certificate-authority-data"], cluster["certificate-authority"], baseDir, where);
  if (caPem === undefined) {
    throw new ConfigError(`invalid ${where}: the cluster has no certificate-authority or certificate-authority-data; tinylb verifies the API server against it`);
  }

  return {
    server: url.href.replace(/\/$/, ""),
    tlsServerName: cluster["tls-server-name"] ?? url.hostname.replace(/^\[(.*)\]$/, "$1"),
    caPem,
  };
}

function userCredentials(user: KubeconfigUser, baseDir: string, where: string): Pick<KubernetesAccess, "clientCertificate" | "bearerToken" | "bearerTokenFile"> {
  if (user.exec !== undefined || user["auth-provider"] !== undefined) {
    throw new ConfigError(`invalid ${where}: exec and auth-provider credential plugins are not supported; use a client certificate, token or tokenFile`);
  }

  const certPem = pemFrom(user["client-certificate-data"], user["client-certificate"], baseDir, where);
  const keyPem = pemFrom(user["client-key-data"], user["client-key"], baseDir, where);
  if ((certPem === undefined) !== (keyPem === undefined)) {
    throw new ConfigError(`invalid ${where}: the user has a client certificate without its key, or a key without its certificate`);
  }

  const tokenFile = user.tokenFile === undefined ? undefined : resolvePath(baseDir, user.tokenFile);
  if (tokenFile !== undefined) {
    readText(tokenFile, MAX_TOKEN_FILE_BYTES, where);
  }
  if (certPem === undefined && user.token === undefined && tokenFile === undefined) {
    throw new ConfigError(`invalid ${where}: the user has no client certificate, token or tokenFile`);
  }

  return {
    clientCertificate: certPem === undefined || keyPem === undefined ? undefined : { certPem, keyPem },
    bearerToken: user.token,
    bearerTokenFile: tokenFile,
  };
}

function findNamed<T extends { name: string }>(entries: T[], name: string, kind: string, where: string): T {
  const entry = entries.find((candidate) => candidate.name === name);
  if (entry === undefined) {
    const known = entries.map((candidate) => candidate.name).join(", ") || "none";
    throw new ConfigError(`invalid ${where}: ${kind} "${name}" not found (${kind}s: ${known})`);
  }

  return entry;
}

/** Returns PEM text from base64 `data`, else from the file at `path`, else undefined. */
function pemFrom(data: string | undefined, path: string | undefined, baseDir: string, where: string): string | undefined {
  if (data !== undefined) {
    return Buffer.from(data, "base64").toString("utf8");
  }

  return path === undefined ? undefined : readText(resolvePath(baseDir, path), MAX_PEM_FILE_BYTES, where);
}

function resolvePath(baseDir: string, path: string): string {
  return isAbsolute(path) ? path : join(baseDir, path);
}

function readText(path: string, maxBytes: number, where: string): string {
  try {
    return readRegularFile(path, maxBytes).toString("utf8");
  } catch (error) {
    throw new ConfigError(`read ${path} (from ${where}) failed: ${describeReadError(error)}`, { cause: error });
  }
}

function describeReadError(error: unknown): string {
  return describeFileError(error);
}
