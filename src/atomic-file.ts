import { randomBytes } from "node:crypto";
import { closeSync, constants, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";

/** Random names tried for the temporary file before a write gives up on EEXIST. */
const MAX_NAME_ATTEMPTS = 5;

/**
 * Flags of the temporary file: created by this call (`O_EXCL`), and never through a symlink
 * (`O_NOFOLLOW`), so a user who can write in the folder cannot make tinylb write into another
 * file by planting a link at the name.
 */
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/**
 * Writes `text` to `path` atomically, as mkstemp(3) and rename(2) do: to a new file with a
 * random name in the same folder, mode 0600 (less under a stricter umask), flushed to disk,
 * then renamed over `path`. A crash leaves either the old or the new file. rename(2) replaces
 * a symlink at `path` and never writes through it.
 *
 * @param beforeRename runs after the data is on disk and before the rename. When it throws,
 *   the temporary file is removed and `path` is left as it was.
 * @throws {Error} the node:fs error of the failed step (with `code`), after removing the
 *   temporary file.
 */
export function writeFileAtomically(path: string, text: string, beforeRename: () => void = () => {}): void {
  const { fd, temporary } = createTemporaryFile(path);
  try {
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    beforeRename();
    renameSync(temporary, path);
  } catch (error) {
    removeQuietly(temporary);
    throw error;
  }
}

/** Creates `PATH.RANDOM.tmp` exclusively, trying another random name when one exists. */
function createTemporaryFile(path: string): { fd: number; temporary: string } {
  for (let attempt = 1; ; attempt++) {
    const temporary = `${path}.${randomBytes(6).toString("hex")}.tmp`;
    try {
      return { fd: openSync(temporary, CREATE_FLAGS, 0o600), temporary };
    } catch (error) {
      if ((error as { code?: unknown }).code !== "EEXIST" || attempt === MAX_NAME_ATTEMPTS) {
        throw error;
      }
    }
  }
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Never created, or already gone.
  }
}
