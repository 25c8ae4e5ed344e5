/**
 * Paths the state file must not have. Each save of the running set would replace a file that
 * tinylb reads, and a file at a Unix socket path that tinylb binds makes the bind fail.
 */
import { formatAddress } from "./address.ts";
import { canonicalPath } from "./canonical-path.ts";
import type { CliOptions } from "./cli.ts";
import type { ClusterCredentials } from "./cluster-providers.ts";
import { ConfigError } from "./config.ts";
import type { ProbeOverrides } from "./probes/probe.ts";
import type { Settings } from "./settings.ts";

/** A path that a setting names, with the setting as the user gave it, such as `--probe-ca` or `probe.tls.ca`. */
export interface NamedPath {
  setting: string;
  path: string;
}

/** The flags that set probe files, by the field of a config file's probe block. */
const PROBE_FILE_FLAGS: Record<string, string> = { "tls.ca": "--probe-ca", bearerTokenFile: "--probe-token-file" };

/** Returns the flag when the command line gave the setting, else its config key. */
function settingName(fromFlag: boolean, flag: string, key: string): string {
  return fromFlag ? flag : key;
}

/** Returns the state file path of the settings with the setting that names it, or undefined without one. */
export function namedStateFile(cli: CliOptions, settings: Settings): NamedPath | undefined {
  const path = settings.providers.stateFile;

  return path === undefined ? undefined : { setting: settingName(cli.providers?.stateFile !== undefined, "--state-file", "stateFile"), path };
}

/**
 * Lists the files that a start reads because a setting names them. These are the config file,
 * the admin token file, and the CA, client certificate, key and bearer token file of every
 * probe block. They are also the kubeconfig and the files it names (or the service account's
 * files) and the etcd TLS files.
 */
export function filesRead(cli: CliOptions, settings: Settings, credentials: ClusterCredentials): NamedPath[] {
  const files: NamedPath[] = [];
  if (cli.configPath !== undefined) {
    files.push({ setting: "--config", path: cli.configPath });
  }
  const tokenFile = settings.providers.adminTokenFile;
  if (tokenFile !== undefined) {
    files.push({ setting: settingName(cli.providers?.adminTokenFile !== undefined, "--admin-token-file", "adminTokenFile"), path: tokenFile });
  }

  const fromFlags = new Set(probeFiles(cli.health?.probe, (field) => field).map((file) => file.setting));
  files.push(...probeFiles(settings.health.check.probe, (field) => (fromFlags.has(field) ? (PROBE_FILE_FLAGS[field] ?? `probe.${field}`) : `probe.${field}`)));
  for (const [id, probe] of settings.health.check.probeOverrides ?? []) {
    files.push(...probeFiles(probe, (field) => `backends[id=${id}].probe.${field}`));
  }

  files.push(...(credentials.kubernetes?.files ?? []));
  const etcd = settings.etcd;
  for (const [key, path] of [["caFile", etcd?.caFile], ["certFile", etcd?.certFile], ["keyFile", etcd?.keyFile]] as const) {
    if (path !== undefined) {
      files.push({ setting: `etcd.${key}`, path });
    }
  }

  return files;
}

/** Lists the files of one probe block, each named by `name` of its field, such as `tls.ca`. */
function probeFiles(probe: ProbeOverrides | undefined, name: (field: string) => string): NamedPath[] {
  const fields: [string, string | undefined][] = [
    ["tls.ca", probe?.tls?.caFile],
    ["tls.cert", probe?.tls?.certFile],
    ["tls.key", probe?.tls?.keyFile],
    ["bearerTokenFile", probe?.bearerTokenFile],
  ];

  return fields.filter(([, path]) => path !== undefined).map(([field, path]) => ({ setting: name(field), path: path! }));
}

/**
 * Lists the Unix socket paths that a start binds: those of the listen addresses and of the admin
 * API. Each setting is named with its address, such as `--admin unix:/run/tinylb/admin.sock`.
 * The metrics server listens on TCP only.
 */
export function socketPaths(cli: CliOptions, settings: Settings): NamedPath[] {
  const listen = settingName(cli.listen.length > 0, "--listen", "listen");
  const sockets: NamedPath[] = [];
  for (const address of settings.listen) {
    if (address.kind === "unix") {
      sockets.push({ setting: `${listen} ${formatAddress(address)}`, path: address.path });
    }
  }
  const admin = settings.providers.admin;
  if (admin !== "off" && admin.kind === "unix") {
    const name = settings.providers.adminIsDefault ? "the admin API's default address" : settingName(cli.providers?.admin !== undefined, "--admin", "admin");
    sockets.push({ setting: `${name} ${formatAddress(admin)}`, path: admin.path });
  }

  return sockets;
}

/**
 * Rejects a state file at the path of a file that tinylb reads or of a Unix socket that it
 * binds, and one whose copy path (the path and `.bad`) is a file that tinylb reads. Paths are compared as `canonicalPath` spells them, so a symlink or a path through a
 * symlinked folder is caught too.
 *
 * @throws {ConfigError} naming both settings and the fix.
 */
export function checkStateFilePath(stateFile: NamedPath, files: readonly NamedPath[], sockets: readonly NamedPath[]): void {
  const path = canonicalPath(stateFile.path);
  const same = (other: NamedPath): boolean => canonicalPath(other.path) === path;
  const fix = `pick another path for ${stateFile.setting}, such as /var/lib/tinylb/state.json`;

  const file = files.find(same);
  if (file !== undefined) {
    throw new ConfigError(`invalid state file ${stateFile.path}: ${file.setting} names the same file (${file.path}), which tinylb reads, so each save of the running set would replace it; ${fix}`);
  }
  const badCopy = canonicalPath(`${stateFile.path}.bad`);
  const copied = files.find((other) => canonicalPath(other.path) === badCopy);
  if (copied !== undefined) {
    throw new ConfigError(`invalid state file ${stateFile.path}: ${copied.setting} names ${copied.path}, which tinylb reads, and a state file that cannot be read is copied to that path before it is rewritten; ${fix}`);
  }
  const socket = sockets.find(same);
  if (socket !== undefined) {
    throw new ConfigError(`invalid state file ${stateFile.path}: ${socket.setting} binds a Unix socket at the same path, so the state file would take the socket's place and binding the socket would fail; ${fix}`);
  }
}
