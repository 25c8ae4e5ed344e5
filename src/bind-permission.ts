/**
 * Whether the user running this process may bind an address, found without binding it, so
 * that `tinylb check` rejects an address that a start by the same user would fail to bind.
 */
import { accessSync, constants, readFileSync, type Stats, statSync } from "node:fs";
import { dirname } from "node:path";

/** Bypasses file permission checks (bit 1 in Linux's <linux/capability.h>). */
const CAP_DAC_OVERRIDE = 1n;

/** Allows binding ports below net.ipv4.ip_unprivileged_port_start (bit 10 in <linux/capability.h>). */
const CAP_NET_BIND_SERVICE = 10n;

/**
 * The first port that needs no privilege when /proc/sys cannot be read, as under systemd's
 * ProcSubset=pid. It is the default of net.ipv4.ip_unprivileged_port_start since Linux 4.11,
 * which added the setting, and the fixed limit before.
 */
const DEFAULT_UNPRIVILEGED_PORT_START = 1024;

/**
 * Parses the effective capability set from the text of /proc/PID/status, or returns undefined
 * when it has no valid `CapEff:` line.
 */
export function parseEffectiveCapabilities(status: string): bigint | undefined {
  const match = /^CapEff:\s*([0-9a-f]+)$/im.exec(status);

  return match === null ? undefined : BigInt(`0x${match[1]}`);
}

/**
 * Returns whether this process has the capability with bit number `bit` in its effective set.
 * Returns undefined when /proc/self/status cannot be read, as on a system without procfs.
 */
function hasEffectiveCapability(bit: bigint): boolean | undefined {
  let status: string;
  try {
    status = readFileSync("/proc/self/status", "utf8");
  } catch {
    return undefined;
  }
  const capabilities = parseEffectiveCapabilities(status);

  return capabilities === undefined ? undefined : (capabilities & (1n << bit)) !== 0n;
}

/**
 * Returns the first TCP port that a process without CAP_NET_BIND_SERVICE may bind, from
 * net.ipv4.ip_unprivileged_port_start, or 1024 when that cannot be read. The setting belongs to
 * the network namespace, so it applies to IPv6 too.
 */
export function unprivilegedPortStart(): number {
  try {
    const value = Number(readFileSync("/proc/sys/net/ipv4/ip_unprivileged_port_start", "utf8").trim());

    return Number.isInteger(value) && value >= 0 ? value : DEFAULT_UNPRIVILEGED_PORT_START;
  } catch {
    return DEFAULT_UNPRIVILEGED_PORT_START;
  }
}

/**
 * Returns "EACCES" when binding TCP `port` needs CAP_NET_BIND_SERVICE and this process does not
 * have it in its effective set, or undefined when the bind is permitted or the capabilities
 * cannot be read. Port 0 lets the kernel pick a free port, which needs no privilege.
 * NOTE: with /proc/sys hidden, a port below 1024 counts as privileged even in a network
 * namespace whose ip_unprivileged_port_start is lower.
 */
export function portBindErrorCode(port: number): "EACCES" | undefined {
  if (port === 0 || port >= unprivilegedPortStart()) {
    return undefined;
  }

  return hasEffectiveCapability(CAP_NET_BIND_SERVICE) === false ? "EACCES" : undefined;
}

/**
 * Returns the errno code that creating a Unix socket at `path` would fail with because this
 * user may not create files in its folder, found with stat(2) and access(2). With
 * `makesFolders`, the missing folders of the path are created first, as `mkdir -p` does, so
 * the nearest existing folder must be writable. Without it, a missing folder returns undefined,
 * since `socketFolderErrorCode` reports it. The code is ENOTDIR when a part of the path is a
 * file, and access(2)'s code (EACCES, EROFS) when the folder is not writable and searchable.
 * Returns undefined when the socket can be created.
 */
export function socketCreateErrorCode(path: string, makesFolders: boolean): string | undefined {
  let folder = dirname(path);
  let stats = statOrUndefined(folder);
  while (makesFolders && stats === undefined && folder !== dirname(folder)) {
    folder = dirname(folder);
    stats = statOrUndefined(folder);
  }
  if (stats === undefined) {
    return undefined;
  }
  if (stats !== "denied" && !stats.isDirectory()) {
    return "ENOTDIR";
  }

  return writeAccessErrorCode(folder);
}

/**
 * Returns the stat(2) result of `path`, undefined when it or a folder above it is missing or a
 * file, or "denied" when stat(2) fails otherwise, as for a folder above it that cannot be
 * searched. access(2) then reports the same error.
 */
function statOrUndefined(path: string): Stats | "denied" | undefined {
  try {
    return statSync(path);
  } catch (error) {
    const code = (error as { code?: string }).code;

    return code === "ENOENT" || code === "ENOTDIR" ? undefined : "denied";
  }
}

/**
 * Returns access(2)'s errno code for writing and searching `folder`, or undefined when both are
 * granted. access(2) checks a user other than root without its capabilities, so EACCES is
 * ignored when CAP_DAC_OVERRIDE is effective, which lets bind(2) create the socket.
 */
function writeAccessErrorCode(folder: string): string | undefined {
  try {
    accessSync(folder, constants.W_OK | constants.X_OK);
  } catch (error) {
    const code = (error as { code?: string }).code ?? "EACCES";
    if (code === "EACCES" && hasEffectiveCapability(CAP_DAC_OVERRIDE) === true) {
      return undefined;
    }

    return code;
  }

  return undefined;
}
