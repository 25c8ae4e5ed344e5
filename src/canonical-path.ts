import { readlinkSync, realpathSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";

/**
 * Returns one spelling of `path`, so that two paths of one file or socket compare equal: its
 * real path, with symlinks resolved. A symlink to a file that does not exist yet, such as a
 * socket not bound yet, is followed to the path it names. While that file does not exist, the
 * result is the real path of its folder plus the file name, and while the folder does not
 * exist either, the path made absolute and normalized.
 */
export function canonicalPath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    // The file is not there yet, such as a listen socket before its first bind.
  }
  const final = followLinks(resolve(path));
  try {
    return join(realpathSync(dirname(final)), basename(final));
  } catch {
    return final;
  }
}

/** Symlinks followed at most, as Linux's own limit for a path lookup (MAXSYMLINKS). */
const MAX_LINKS = 40;

/** Follows `path` while it is a symlink, to the path an open or connect would reach once that file exists. */
function followLinks(path: string): string {
  let current = path;
  for (let hop = 0; hop < MAX_LINKS; hop++) {
    try {
      current = resolve(dirname(current), readlinkSync(current));
    } catch {
      // Not a symlink, or not there: this is the file an open or connect would reach.
      return current;
    }
  }

  return current;
}
