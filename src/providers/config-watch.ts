import { type FSWatcher, readlinkSync, realpathSync, statSync, watch } from "node:fs";
import { dirname, resolve } from "node:path";
import type { Logger } from "../logger.ts";

interface FolderWatch {
  /** Inode of the folder when the watch began, so a folder deleted and made again is watched anew. */
  ino: number;
  watcher: FSWatcher;
}

/**
 * The folder watches that see every change of one config file, re-established as folders come
 * and go. It watches folders rather than the file, because a save by rename (editors, `mv`) and
 * a Kubernetes ConfigMap update (the `..data` symlink swapped to a new folder) replace the file.
 *
 * Folders watched:
 * - the file's folder, or, while that folder is missing, its nearest existing parent, so the
 *   folder is watched again as soon as it is made again;
 * - the folder of the file's resolved target, when the file is a symlink into another folder,
 *   so an in-place write to that target is seen too. While the link dangles, the folder it
 *   points into is watched, or that folder's nearest existing parent while it is missing,
 *   so the target is seen when it is made again.
 *
 * `refresh` recomputes both after every event and on the caller's poll, so a swapped symlink
 * or a folder deleted and made again moves the watches along.
 * NOTE: only the folders of the first and the last link of a symlink chain are watched. So a
 * change of a link in a third folder is seen by the caller's poll alone.
 */
export class ConfigWatch {
  readonly #path: string;
  readonly #folder: string;
  readonly #onEvent: () => void;
  readonly #log: Logger;
  readonly #watches = new Map<string, FolderWatch>();
  /** The folder of the file's resolved target at the last refresh, when it is not the file's own folder. */
  #targetFolder: string | undefined;
  /** Whether the file's own folder existed at the last refresh; undefined before the first. */
  #folderPresent: boolean | undefined;
  #lastError: string | undefined;
  #closed = false;
  #symlinkAnnounced = false;

  /**
   * @param path the config file.
   * @param onEvent called after every event in a watched folder, once the watches are refreshed.
   */
  constructor(path: string, onEvent: () => void, log: Logger) {
    this.#path = resolve(path);
    this.#folder = dirname(this.#path);
    this.#onEvent = onEvent;
    this.#log = log;
  }

  /** The folders watched now, sorted. */
  get folders(): string[] {
    return [...this.#watches.keys()].sort();
  }

  /**
   * Watches the folders the file depends on now and closes the watches of folders it no longer
   * depends on. A folder that cannot be watched is logged once per distinct error and tried again
   * on the next refresh.
   */
  refresh(): void {
    if (this.#closed) {
      return;
    }

    const expected = this.#expectedFolders();
    for (const [folder, watched] of this.#watches) {
      if (expected.get(folder) !== watched.ino) {
        watched.watcher.close();
        this.#watches.delete(folder);
      }
    }
    for (const [folder, ino] of expected) {
      if (!this.#watches.has(folder)) {
        this.#watch(folder, ino);
      }
    }
  }

  /** Closes every watch; later events and refreshes do nothing. */
  close(): void {
    this.#closed = true;
    for (const watched of this.#watches.values()) {
      watched.watcher.close();
    }
    this.#watches.clear();
  }

  /** Maps each folder to watch to its inode, and logs when the file's own folder goes or comes back. */
  #expectedFolders(): Map<string, number> {
    const expected = new Map<string, number>();
    const folderIno = inodeOf(this.#folder);
    if (folderIno !== undefined) {
      expected.set(this.#folder, folderIno);
    } else {
      const parent = nearestExistingParent(this.#folder);
      if (parent !== undefined) {
        expected.set(parent.folder, parent.ino);
      }
    }
    this.#noteFolderPresence(folderIno !== undefined, [...expected.keys()][0]);

    this.#targetFolder = undefined;
    const target = resolvedTarget(this.#path);
    if (target !== undefined) {
      const targetFolder = dirname(target);
      const targetIno = inodeOf(targetFolder);
      if (targetIno !== undefined && !expected.has(targetFolder)) {
        expected.set(targetFolder, targetIno);
        this.#targetFolder = targetFolder;
      }
    } else {
      const dangling = danglingLinkFolder(this.#path);
      if (dangling !== undefined && !expected.has(dangling.folder)) {
        expected.set(dangling.folder, dangling.ino);
      }
    }

    return expected;
  }

  #noteFolderPresence(present: boolean, watching: string | undefined): void {
    const before = this.#folderPresent;
    this.#folderPresent = present;
    if (before === present) {
      return;
    }

    if (!present) {
      this.#log.info("config folder is missing; watching its parent folder until it exists again", { folder: this.#folder, watching });
    } else if (before === false) {
      this.#log.info("config folder exists again; watching it", { folder: this.#folder });
    }
  }

  #watch(folder: string, ino: number): void {
    let watcher: FSWatcher;
    try {
      watcher = watch(folder, { persistent: false }, () => this.#event());
    } catch (error) {
      this.#watchFailed(folder, error);

      return;
    }

    watcher.on("error", (error) => {
      watcher.close();
      if (this.#watches.get(folder)?.watcher === watcher) {
        this.#watches.delete(folder);
      }
      this.#watchFailed(folder, error);
    });
    this.#watches.set(folder, { ino, watcher });
    this.#lastError = undefined;
    if (folder === this.#targetFolder) {
      // A Kubernetes ConfigMap update points the symlink at a new folder every time, so only
      // the first such folder is worth an info line.
      const level = this.#symlinkAnnounced ? "debug" : "info";
      this.#symlinkAnnounced = true;
      this.#log[level]("config file is a symlink into another folder; watching that folder too", { file: this.#path, folder });
    } else {
      this.#log.debug("watching config folder", { file: this.#path, folder });
    }
  }

  #watchFailed(folder: string, error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    if (message === this.#lastError) {
      return;
    }

    this.#lastError = message;
    this.#log.warn("watching a config folder failed; changes are picked up by polling or SIGHUP", { file: this.#path, folder, err: error });
  }

  #event(): void {
    if (this.#closed) {
      return;
    }

    this.refresh();
    this.#onEvent();
  }
}

function inodeOf(folder: string): number | undefined {
  try {
    const stats = statSync(folder);

    return stats.isDirectory() ? stats.ino : undefined;
  } catch {
    return undefined;
  }
}

function nearestExistingParent(folder: string): { folder: string; ino: number } | undefined {
  let current = folder;
  for (;;) {
    const parent = dirname(current);
    if (parent === current) {
      return undefined;
    }
    const ino = inodeOf(parent);
    if (ino !== undefined) {
      return { folder: parent, ino };
    }
    current = parent;
  }
}

/**
 * Returns the folder to watch for a symlink at `path` that does not resolve: the folder it
 * points into, or that folder's nearest existing parent. Undefined when `path` is no symlink.
 */
function danglingLinkFolder(path: string): { folder: string; ino: number } | undefined {
  let link: string;
  try {
    link = readlinkSync(path);
  } catch {
    // Not a symlink, or no file at all: the file's own folder is watched.
    return undefined;
  }
  const folder = dirname(resolve(dirname(path), link));
  const ino = inodeOf(folder);

  return ino === undefined ? nearestExistingParent(folder) : { folder, ino };
}

/** Returns the file's path with every symlink resolved, or undefined when it does not resolve. */
function resolvedTarget(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}
