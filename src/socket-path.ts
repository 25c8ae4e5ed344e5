/**
 * Rules for a Unix socket path, checked where an address is parsed, so that a start,
 * `tinylb check` and the admin API reject a path that bind(2) or connect(2) would reject,
 * and the causes of a failed bind of one.
 */

import { statSync } from "node:fs";
import { dirname } from "node:path";

/** Maximum length in bytes of a Unix socket path on Linux: sun_path has 108 bytes, one of them the final NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;

/**
 * Describes why `path` cannot name a Unix socket that tinylb binds or dials, with the fix, or
 * returns undefined when it can. A relative path is rejected because it would depend on
 * tinylb's working folder, which is `/` under systemd.
 */
export function socketPathProblem(path: string): string | undefined {
  if (!path.startsWith("/")) {
    return `the socket path "${path}" is relative, so it would depend on tinylb's working folder; use an absolute path, as in unix:/run/app.sock`;
  }

  return socketPathLengthProblem(path);
}

/**
 * Describes a socket path longer than MAX_SOCKET_PATH_BYTES, with its length and the fix, or
 * returns undefined for one that fits. bind(2) and connect(2) both reject a longer path.
 */
export function socketPathLengthProblem(path: string): string | undefined {
  const bytes = Buffer.byteLength(path);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    return `the path has ${bytes} bytes, more than the ${MAX_SOCKET_PATH_BYTES} a Unix socket path can have; use a shorter path`;
  }

  return undefined;
}

/**
 * Returns the errno code that binding a socket at `path` will fail with because of its
 * folder, found without binding. The code is ENOENT when the folder is missing, ENOTDIR when
 * it or a folder above it is a file, and stat(2)'s code when that fails otherwise. Returns
 * undefined for an existing folder.
 */
export function socketFolderErrorCode(path: string): string | undefined {
  try {
    return statSync(dirname(path)).isDirectory() ? undefined : "ENOTDIR";
  } catch (error) {
    return (error as { code?: string }).code ?? "ENOENT";
  }
}

/**
 * Describes why binding a Unix socket at `path` failed with the errno `code`, with the fix,
 * or returns undefined for a code without a known cause. It reads the folders of the path
 * again to tell a missing folder from one whose file system does not support sockets.
 */
export function unixListenErrorHint(code: string, path: string): string | undefined {
  const folder = dirname(path);
  switch (code) {
    case "EACCES":
      return `permission denied: this user cannot create a socket in ${folder}`;
    case "ENOENT":
      // Linux also gives ENOENT for a socket in /proc, where the folder exists (seen with Linux 6.18 and Bun 1.4.4).
      return isFolder(folder)
        ? `the folder ${folder} exists, but its file system does not allow creating a socket in it, as with /proc; pick a folder on a regular file system, such as /run/tinylb or /tmp`
        : `the folder ${folder} does not exist; create it or pick another path`;
    case "ENOTDIR": {
      const file = firstFileAmongFolders(folder);

      return file === undefined ? `a part of the folder ${folder} is not a folder; pick another path` : `${file} is a file, not a folder; pick another path`;
    }
    case "EPERM":
      return `creating a socket in ${folder} is not permitted, as on /sys or in an immutable folder; pick a folder on a regular file system, such as /run/tinylb or /tmp`;
    case "EROFS":
      return `${folder} is on a read-only file system; pick a writable folder, such as /run/tinylb (RuntimeDirectory= under systemd) or /tmp`;
  }

  return undefined;
}

function isFolder(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() === true;
}

/** Returns the first of `folder` and the folders above it, from the root down, that exists and is not a folder. */
function firstFileAmongFolders(folder: string): string | undefined {
  const parts = folder.split("/");
  for (let end = 1; end <= parts.length; end++) {
    const prefix = parts.slice(0, end).join("/");
    if (prefix === "") {
      continue;
    }
    let stats;
    try {
      stats = statSync(prefix, { throwIfNoEntry: false });
    } catch {
      return undefined;
    }
    if (stats === undefined) {
      return undefined;
    }
    if (!stats.isDirectory()) {
      return prefix;
    }
  }

  return undefined;
}
