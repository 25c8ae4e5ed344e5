import { dirname } from "node:path";
import { type Address, formatAddress } from "./address.ts";
import { adminSocketError, checkAdminAddress, tcpBindError } from "./admin-server.ts";
import { adminSocketFolderProblem } from "./admin-socket-access.ts";
import { adminTokenWarnings, readTokenFile } from "./admin-token.ts";
import { portBindErrorCode, socketCreateErrorCode } from "./bind-permission.ts";
import type { CliOptions } from "./cli.ts";
import { type ClusterCredentials, loadClusterCredentials } from "./cluster-providers.ts";
import { ConfigError, type FileConfig } from "./config.ts";
import { describeListenError, ListenError } from "./listener.ts";
import type { Logger } from "./logger.ts";
import { unusedResolverWarning } from "./provider-settings.ts";
import { controlAddressesOf, findSelfTarget } from "./self-target.ts";
import { socketFolderErrorCode } from "./socket-path.ts";
import { mergeSettings, type Settings } from "./settings.ts";
import { readDescriptorLimit } from "./descriptor-budget.ts";
import { reloadDescriptorProblem, type StartDescriptorCount } from "./start-descriptors.ts";
import { StateFile } from "./state-file.ts";
import { checkStateFilePath, filesRead, namedStateFile, socketPaths } from "./state-file-path.ts";

/**
 * Checks what start-up reads besides the flags and the config file, before anything is
 * bound: the admin address, its token file and its socket's folder, the ports of the TCP
 * admin API and metrics addresses, backends whose target is one of the listen
 * addresses, the state file's folder, the folders of Unix socket listen addresses, the
 * Kubernetes and etcd credentials, and a state file path that is a file read or a socket
 * bound. It reads files only, and writes, binds, dials and resolves nothing, so `tinylb
 * check` runs it too. Returns the cluster credentials it read, so that start-up reads those
 * files once. Its messages name a setting by its flag when `cli` gave it, else by its config key.
 *
 * @throws {ConfigError} naming the setting, the file or the backend that is wrong.
 * @throws {ListenError} when the folder of a Unix socket listen address is missing, when this
 *   user cannot create the admin socket that `--admin` or `admin` names, or when it may not
 *   bind the port of a TCP admin API or metrics address.
 */
export function checkStartSettings(settings: Settings, cli: CliOptions): ClusterCredentials {
  const options = settings.providers;
  if (options.admin !== "off") {
    checkAdminAddress(options.admin, options.adminAllowPublic, options.adminTokenFile);
    if (options.adminTokenFile !== undefined) {
      readTokenFile(options.adminTokenFile);
    }
    checkAdminSocketFolder(options.admin, options.adminIsDefault === true);
  }
  checkControlPorts(options);

  const selfTarget = findSelfTarget(settings.backends.backends, settings.listen, controlAddressesOf(options));
  if (selfTarget !== undefined) {
    throw new ConfigError(`invalid backend: ${selfTarget}`);
  }
  if (options.stateFile !== undefined) {
    new StateFile(options.stateFile).checkPath();
  }
  checkUnixListenFolders(settings);
  const credentials = loadClusterCredentials(settings, cli.configPath);
  const stateFile = namedStateFile(cli, settings);
  if (stateFile !== undefined) {
    checkStateFilePath(stateFile, filesRead(cli, settings, credentials), socketPaths(cli, settings));
  }

  return credentials;
}

/**
 * Checks a re-read config file as a start with the same flags checks it, so that a reload
 * rejects a file that a restart would fail on. It rejects a missing listen address, clashing
 * listen, admin API and metrics addresses, and invalid probe settings or probe files. It also
 * rejects a backend that targets a running or a new listen address, an admin address that
 * needs more flags, and a state file or Unix socket listen address in a missing folder.
 * It reads no other file, so that a token file, kubeconfig or etcd TLS file replaced on its own
 * does not block the backends of a reload. A restart checks those. With `descriptorsAtStart`,
 * it also rejects more probed backends than fit under the descriptor limit beside the start's
 * descriptors (see `reloadDescriptorProblem`).
 *
 * @throws {ConfigError} naming the setting that a start would reject.
 */
export function checkReloadedConfig(config: FileConfig, cli: CliOptions, listening: readonly Address[], descriptorsAtStart?: StartDescriptorCount): void {
  const path = cli.configPath ?? "";
  const settings = mergeSettings(cli, config);
  const options = settings.providers;
  const selfTarget = findSelfTarget(settings.backends.backends, [...listening, ...settings.listen], controlAddressesOf(options));
  if (selfTarget !== undefined) {
    throw new ConfigError(`invalid config ${path}: ${selfTarget}`);
  }

  if (options.admin !== "off") {
    checkAdminAddress(options.admin, options.adminAllowPublic, options.adminTokenFile);
  }
  if (options.stateFile !== undefined) {
    new StateFile(options.stateFile).checkPath();
  }
  try {
    checkUnixListenFolders(settings);
  } catch (error) {
    // A start exits with the listen error, which a reload reports as an invalid config.
    if (!(error instanceof ListenError)) {
      throw error;
    }
    throw new ConfigError(`invalid config ${path}: ${error.message}`, { cause: error });
  }
  const descriptorProblem = descriptorsAtStart === undefined ? undefined : reloadDescriptorProblem(settings, descriptorsAtStart, readDescriptorLimit());
  if (descriptorProblem !== undefined) {
    throw new ConfigError(`invalid config ${path}: ${descriptorProblem}`);
  }
}

/**
 * Checks that the folder of every Unix socket listen address exists and is a folder, as
 * binding it needs. `tinylb check` also warns of a folder this user cannot write, with
 * `listenPermissionProblems`. A file system that does not support sockets, such as /proc, is
 * found only when the bind fails.
 *
 * @throws {ListenError} with the message a start that fails to bind the address prints.
 */
function checkUnixListenFolders(settings: Settings): void {
  for (const address of settings.listen) {
    if (address.kind !== "unix") {
      continue;
    }
    const code = socketFolderErrorCode(address.path);
    if (code !== undefined) {
      const error = Object.assign(new Error(`checking the folder ${dirname(address.path)} failed (${code}); pick another path`), { code });
      throw new ListenError(`listen on ${formatAddress(address)} failed: ${describeListenError(error, address)}`);
    }
  }
}

/**
 * Logs the warnings that the settings alone give reason for, such as a DNS resolver that no DNS
 * name uses, or an admin token that is short or that other users can read.
 */
export function logSettingsWarnings(settings: Settings, logger: Logger): void {
  const log = logger.with({ component: "main" });
  const resolverWarning = unusedResolverWarning(settings.providers.dns);
  if (resolverWarning !== undefined) {
    log.warn(resolverWarning, { resolvers: settings.providers.dns.resolvers.join(",") });
  }

  const tokenFile = settings.providers.adminTokenFile;
  if (settings.providers.admin === "off" || tokenFile === undefined) {
    return;
  }
  let token: string;
  try {
    token = readTokenFile(tokenFile);
  } catch {
    // The admin API's start and `checkStartSettings` report a token file that cannot be read.
    return;
  }
  for (const warning of adminTokenWarnings(tokenFile, token)) {
    log.warn(warning.message, warning.fields);
  }
}

/**
 * Rejects an admin socket that `--admin` or `admin` names in a folder another user could
 * replace it in, or in a folder this user cannot create it in, as the admin API's start would.
 * The default socket is left out, because a start that cannot bind it logs a warning and runs
 * without the admin API.
 *
 * @throws {ConfigError} naming the address, the folder's owner or mode, and the fix.
 * @throws {ListenError} with the error of a start that fails to create the socket, when this
 *   user cannot write or search its folder, or the nearest existing one for a missing folder.
 */
function checkAdminSocketFolder(admin: Address, isDefault: boolean): void {
  if (admin.kind !== "unix" || isDefault) {
    return;
  }
  const problem = adminSocketFolderProblem(admin.path);
  if (problem !== undefined) {
    throw new ConfigError(`invalid admin address ${formatAddress(admin)}: ${problem}`);
  }
  const code = socketCreateErrorCode(admin.path, true);
  if (code !== undefined) {
    throw adminSocketError(admin.path, checkError(admin, code));
  }
}

/**
 * Returns the error of a start that fails to bind each listen address this user may not bind:
 * a TCP port below net.ipv4.ip_unprivileged_port_start without CAP_NET_BIND_SERVICE, or a Unix
 * socket in a folder this user cannot write or search. It binds nothing. Only `tinylb check`
 * runs it, and only warns, because a start accepts on a socket that the service manager
 * passes for a listen address (socket activation), which a check cannot see. Binding a low
 * port as root and passing it to an unprivileged tinylb is what a socket unit is for.
 */
export function listenPermissionProblems(settings: Settings): string[] {
  const problems: string[] = [];
  for (const address of settings.listen) {
    const code = address.kind === "tcp" ? portBindErrorCode(address.port) : socketCreateErrorCode(address.path, false);
    if (code !== undefined) {
      problems.push(`listen on ${formatAddress(address)} will fail unless the service manager passes its socket: ${describeListenError(checkError(address, code), address)}`);
    }
  }

  return problems;
}

/**
 * Rejects a TCP admin API or metrics address whose port this user may not bind, with the error
 * of a start that fails to bind it, so that a start fails before it binds a listener.
 *
 * @throws {ListenError} naming the server, the address and the flag that picks another one.
 */
function checkControlPorts(options: Settings["providers"]): void {
  const controlAddresses: [subject: string, flag: string, address: Address | "off"][] = [
    ["admin API", "--admin", options.admin],
    ["metrics server", "--metrics", options.metrics],
  ];
  for (const [subject, flag, address] of controlAddresses) {
    if (address === "off" || address.kind !== "tcp") {
      continue;
    }
    const code = portBindErrorCode(address.port);
    if (code !== undefined) {
      throw tcpBindError(subject, flag, address, checkError(address, code));
    }
  }
}

/**
 * Returns an error with the errno `code` that a bind of `address` would fail with. Its message
 * is shown only for a code that `describeListenError` has no hint for.
 */
function checkError(address: Address, code: string): Error {
  const subject = address.kind === "unix" ? `the folders of ${address.path}` : `port ${address.port}`;

  return Object.assign(new Error(`checking ${subject} failed (${code}); pick another address`), { code });
}
