/**
 * Owners allowed for the admin API's Unix socket and its folder. A user who can create or replace the
 * socket can take the admin API's place and receive the bearer token of every `tinylb status`
 * or `tinylb add`. So the balancer binds only in a folder that no other user can write, and the
 * commands send requests only to a socket of their own user or of root.
 */
import { lstatSync, mkdirSync, type Stats, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { formatFileMode } from "./file-mode.ts";
import { describeFileType } from "./regular-file.ts";
import { socketPathProblem } from "./socket-path.ts";

/** Mode bits that let the group or others write in a folder. */
const GROUP_OR_OTHER_WRITE = 0o022;

/** Mode bits that give the group or others any access to a private folder. */
const GROUP_OR_OTHER_ACCESS = 0o077;

const STICKY = 0o1000;

function currentUid(): number {
  return process.getuid?.() ?? 0;
}

/**
 * Returns the folder of the default admin socket of a user other than root, in the way tmux
 * keeps its sockets in `/tmp/tmux-UID`: `$XDG_RUNTIME_DIR/tinylb`, or `/tmp/tinylb-UID` when
 * XDG_RUNTIME_DIR is unset, relative (the XDG Base Directory Specification 0.8 requires ignoring
 * it) or too deep for a socket path of 107 bytes. tinylb creates the folder with mode 0700.
 */
export function privateAdminFolder(uid: number = currentUid()): string {
  const runtime = process.env.XDG_RUNTIME_DIR;
  const inRuntime = runtime ? join(runtime, "tinylb") : undefined;
  if (inRuntime !== undefined && socketPathProblem(join(inRuntime, "admin.sock")) === undefined) {
    return inRuntime;
  }

  return `/tmp/tinylb-${uid}`;
}

/**
 * Creates the folder of the admin socket `path` when it is missing, with mode 0700, and checks
 * that no other user can replace a socket in it. For the default folder of a user other than
 * root (`privateAdminFolder`), that user must own it, it must not be a symlink, and its mode must be
 * 0700. Any other folder must be owned by the user tinylb runs as or by root, and must be
 * writable only by its owner unless the sticky bit is set, as on /tmp.
 *
 * @param uid the user tinylb runs as; tests pass another.
 * @throws {Error} with the errno `code` of a failed mkdir, or without a code naming the folder,
 *   the owner and mode found, and the fix.
 */
export function prepareAdminSocketFolder(path: string, uid: number = currentUid()): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });

  const problem = adminSocketFolderProblem(path, uid);
  if (problem !== undefined) {
    throw new Error(problem);
  }
}

/**
 * Returns why the folder of the admin socket `path` cannot hold it, as `prepareAdminSocketFolder`
 * checks it, or undefined when it can or is missing (a start creates it). It also returns
 * undefined when lstat(2) of the folder fails, as for a file on its path or a folder above it
 * that this user cannot search, for which creating the folder or the socket fails. It creates
 * nothing, so `tinylb check` runs it too.
 */
export function adminSocketFolderProblem(path: string, uid: number = currentUid()): string | undefined {
  const folder = dirname(path);
  try {
    if (lstatSync(folder, { throwIfNoEntry: false }) === undefined) {
      return undefined;
    }
  } catch {
    return undefined;
  }

  return uid !== 0 && folder === privateAdminFolder(uid) ? privateFolderProblem(folder, uid) : sharedFolderProblem(folder, uid);
}

function privateFolderProblem(folder: string, uid: number): string | undefined {
  const link = lstatSync(folder);
  if (link.isSymbolicLink()) {
    return `the folder ${folder} is a symlink, but the default admin socket folder must be a folder of uid ${uid} (the user tinylb runs as) with mode 0700; remove the link, or pass --admin unix:PATH in a folder of your own`;
  }
  if (link.uid !== uid) {
    return `the folder ${folder} is owned by uid ${link.uid} with mode ${formatFileMode(link.mode)}, but the default admin socket folder must be owned by uid ${uid} (the user tinylb runs as), since its owner can replace the socket; remove the folder, or pass --admin unix:PATH in a folder of your own`;
  }
  if ((link.mode & GROUP_OR_OTHER_ACCESS) !== 0) {
    return `the folder ${folder} has mode ${formatFileMode(link.mode)}, but the default admin socket folder must have mode 0700; run chmod 700 ${folder}`;
  }

  return undefined;
}

function sharedFolderProblem(folder: string, uid: number): string | undefined {
  const stats = statSync(folder);
  if (stats.uid !== uid && stats.uid !== 0) {
    return `the folder ${folder} is owned by uid ${stats.uid}, ${uid === 0 ? "not root (the user tinylb runs as)" : `neither uid ${uid} (the user tinylb runs as) nor root`}, and its owner can replace the socket; pick a folder of this user or of root`;
  }
  if ((stats.mode & GROUP_OR_OTHER_WRITE) !== 0 && (stats.mode & STICKY) === 0) {
    return `the folder ${folder} has mode ${formatFileMode(stats.mode)}, so other users can write in it and replace the socket; run chmod go-w ${folder}, or chmod +t ${folder} to set the sticky bit, or pick another folder`;
  }

  return undefined;
}

/**
 * Returns why a request must not be sent to the Unix socket at `path`: it belongs to a user
 * other than this process's user or root, who may have taken the balancer's place. Root also
 * trusts the socket of a service user in a folder that only root or that user can write, such as
 * `/run/tinylb` of the example unit. Undefined when the owner is fine or the socket is missing,
 * which the connect then reports.
 */
export function adminSocketOwnerProblem(path: string, uid: number = currentUid()): string | undefined {
  let stats: Stats | undefined;
  try {
    stats = statSync(path, { throwIfNoEntry: false });
  } catch {
    // The folder cannot be searched, which the connect reports too.
    return undefined;
  }
  if (stats === undefined || stats.uid === uid || stats.uid === 0) {
    return undefined;
  }
  if (uid === 0 && isServiceFolder(dirname(path), stats.uid)) {
    return undefined;
  }

  return `the admin socket ${path} is owned by uid ${stats.uid}, ${uid === 0 ? "not root (this user)" : `neither uid ${uid} (this user) nor root`}, so no request or token is sent to it, since another user may have taken the balancer's place; run the command as uid ${stats.uid} if that user runs the balancer, or pass --admin with the balancer's socket`;
}

/**
 * Returns why the admin address `path` cannot be a socket: it is a folder or another kind of
 * file, for which connect(2) fails with only "connection refused". Undefined for a socket, a
 * missing path or one this user cannot stat, which the connect reports.
 */
export function adminSocketTypeProblem(path: string): string | undefined {
  let stats: Stats | undefined;
  try {
    stats = statSync(path, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
  if (stats === undefined || stats.isSocket()) {
    return undefined;
  }
  let type = describeFileType(stats);
  if (stats.isDirectory()) {
    type = "a folder";
  } else if (stats.isFile()) {
    type = "a regular file";
  }

  return `${path} is ${type}, not a socket`;
}

/** True when only root or the user `owner` can create or replace entries in `folder`. */
function isServiceFolder(folder: string, owner: number): boolean {
  const stats = statSync(folder, { throwIfNoEntry: false });

  return stats !== undefined && (stats.uid === 0 || stats.uid === owner) && (stats.mode & GROUP_OR_OTHER_WRITE) === 0;
}
