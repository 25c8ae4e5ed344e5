import { accessSync, constants, type Stats, statSync } from "node:fs";
import { dirname } from "node:path";
import { describeFileType } from "./regular-file.ts";

/** The sticky bit of a mode (S_ISVTX), which node:fs does not export. */
const STICKY_BIT = 0o1000;

/**
 * Lists what would keep the user running this process from using the state file at `path`,
 * for `tinylb check`. That is a folder it cannot write, so no write could succeed, or a file
 * it cannot read, so a start would begin without the saved backends. It is also a file of
 * another user in a sticky folder, which only that user may replace, and a FIFO, device or
 * socket, which a start does not read. It checks with access(2) and stat(2) and writes nothing.
 *
 * The file itself needs no write permission, since each write renames a new file over it.
 */
export function stateFileAccessProblems(path: string): string[] {
  const folder = dirname(path);
  const user = `uid ${process.getuid?.() ?? "unknown"}, the user running this check`;
  const problems: string[] = [];
  const folderCode = accessErrorCode(folder, constants.W_OK | constants.X_OK);
  if (folderCode !== undefined) {
    problems.push(
      `the folder ${folder} of the state file is not writable and searchable (${folderCode}) by ${user}, so a start as this user cannot save the running set; give the user tinylb runs as write and search (x) permission on it`,
    );
  }

  let file: ReturnType<typeof statSync>;
  try {
    file = statSync(path, { throwIfNoEntry: false });
  } catch {
    // A folder this user cannot search, reported above.
    return problems;
  }
  if (file === undefined) {
    return problems;
  }
  const problem = fileProblem(path, file, user, moveDeniedReason(path, file.uid));
  if (problem !== undefined) {
    problems.push(problem);
  }

  return problems;
}

/**
 * Why a start could not rename the state file: the folder is not writable by this user, or
 * the sticky bit of the folder protects another user's file.
 */
export type MoveDenied = "folder" | "sticky";

/**
 * Returns why this process could not rename the state file at `path`, whose owner is `owner`
 * (undefined when it cannot be read), or undefined when it could.
 */
export function moveDeniedReason(path: string, owner: number | undefined): MoveDenied | undefined {
  const folder = dirname(path);
  if (accessErrorCode(folder, constants.W_OK | constants.X_OK) !== undefined) {
    return "folder";
  }

  return owner !== undefined && isReplaceDenied(folder, owner) ? "sticky" : undefined;
}

/**
 * Describes what keeps `user` from using the state file `file` at `path`, or returns undefined.
 * A file that a start cannot read is moved to `FILE.bad` before the first write. When
 * `moveDenied` is set, that rename would fail and nothing is moved or saved, so one message
 * reports both.
 */
function fileProblem(path: string, file: Stats, user: string, moveDenied: MoveDenied | undefined): string | undefined {
  const folder = dirname(path);
  const irregular = !file.isFile() && !file.isDirectory();
  const readCode = irregular ? undefined : accessErrorCode(path, constants.R_OK);
  const sticky = `belongs to uid ${file.uid} in the sticky folder ${folder}`;
  const chown = "give the file to the user tinylb runs as (chown)";
  // The folder warning comes first and gives its fix, so these name only the outcome.
  const unwritableFolder = "leaves the file in place and saves nothing, because it cannot write the folder";
  if (irregular) {
    const type = `is ${describeFileType(file)}, not a regular file`;
    if (moveDenied === "sticky") {
      return `the state file ${path} ${type}, and ${sticky}, so a start as ${user} ignores it, can neither move it aside nor replace it, and saves nothing; ${chown}, or pick another path`;
    }

    return moveDenied === "folder"
      ? `the state file ${path} ${type}, so a start as ${user} ignores it, ${unwritableFolder}; remove it or pick another path`
      : `the state file ${path} ${type}, so a start ignores it and moves it to ${path}.bad; remove it or pick another path`;
  }
  if (readCode !== undefined) {
    if (moveDenied === "sticky") {
      return `the state file ${path} is not readable (${readCode}) by ${user} and ${sticky}, so a start as this user ignores its saved backends, can neither move it aside nor replace it, and saves nothing; ${chown}`;
    }

    return moveDenied === "folder"
      ? `the state file ${path} is not readable (${readCode}) by ${user}, so a start as this user ignores its saved backends, ${unwritableFolder}; make it readable by the user tinylb runs as`
      : `the state file ${path} is not readable (${readCode}) by ${user}, so a start as this user ignores its saved backends and moves it to ${path}.bad; make it readable by the user tinylb runs as`;
  }

  return moveDenied === "sticky" ? `the state file ${path} ${sticky}, so ${user} cannot replace it; ${chown}` : undefined;
}

/** Returns the errno code of access(2) on `path` for `mode`, or undefined when access is granted. */
function accessErrorCode(path: string, mode: number): string | undefined {
  try {
    accessSync(path, mode);
  } catch (error) {
    return (error as { code?: string }).code ?? "failed";
  }

  return undefined;
}

/**
 * Returns whether the sticky bit of `folder` denies this process replacing a file of
 * `owner`. Root may replace it, and so may the owner of the file or of the folder.
 */
function isReplaceDenied(folder: string, owner: number): boolean {
  const uid = process.getuid?.();
  const stats = statSync(folder);
  if (uid === undefined || uid === 0 || (stats.mode & STICKY_BIT) === 0) {
    return false;
  }

  return owner !== uid && stats.uid !== uid;
}
