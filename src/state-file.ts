import { lstatSync, renameSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { writeFileAtomically } from "./atomic-file.ts";
import type { Backend } from "./backend.ts";
import { BackendSet } from "./backend-set.ts";
import { ConfigError } from "./config.ts";
import { type Logger, silentLogger } from "./logger.ts";
import { describeFileError } from "./file-errors.ts";
import { ReconnectBackoff } from "./providers/reconnect-backoff.ts";
import { readRegularFile } from "./regular-file.ts";
import { parseSavedState, STATE_VERSION, type SavedBackend, type SavedBackendCheck } from "./saved-state.ts";
import { moveDeniedReason } from "./state-file-access.ts";
import { WriteSchedule } from "./write-schedule.ts";

/** Largest state file read, in bytes. */
const MAX_STATE_BYTES = 4 * 1024 * 1024;

/** Skipped entries logged one by one; the rest are counted in one line. */
const MAX_SKIPPED_LINES = 10;

/**
 * The last applied backend set, saved so that a restarted balancer whose providers are
 * not reachable yet still serves the last known backends.
 *
 * Each backend is saved with the provider it came from. At start-up the saved entries
 * seed each provider's slot in the union until that provider publishes for the first
 * time. Entries of providers that are no longer configured are dropped, unless they are
 * carried (see `carry`).
 */
export class StateFile {
  readonly path: string;
  readonly #log: Logger;
  readonly #schedule: WriteSchedule;
  /** Failed writes since the last one that succeeded. */
  #failures = 0;
  /** Whether a write succeeded since this instance was made. */
  #written = false;
  /**
   * Whether the file at `path` was not read in full and no copy of it was kept, because it
   * could not be read or the copy failed. The next write then moves it to `badCopyPath` first.
   */
  #moveBeforeWrite = false;
  /** Saved backends written again unchanged with every set, each with its provider's name. */
  #carried: { backend: Backend; provider: string }[] = [];
  /** Ids that the loaded file marks disabled. */
  #savedDisabled = new Set<string>();

  /**
   * @param minIntervalMs minimum milliseconds between two writes by `saveSoon`
   * @param retryBackoff delays before each retry of a failed write: by default 0.5 to 1 s,
   *   doubling up to 15 to 30 s
   */
  constructor(path: string, logger: Logger = silentLogger, minIntervalMs = 1000, retryBackoff = new ReconnectBackoff({ initialMs: 1000, maxMs: 30_000 })) {
    this.path = path;
    this.#log = logger.with({ component: "state-file" });
    this.#schedule = new WriteSchedule(minIntervalMs, retryBackoff, (delayMs) => this.#log.debug("retrying the state file write later", { file: this.path, delayMs }));
  }

  /** Path of the copy kept of a state file that could not be read in full. */
  get badCopyPath(): string {
    return `${this.path}.bad`;
  }

  /**
   * Checks that the folder of the state file exists and that the path itself is not a folder,
   * so a wrong path stops start-up instead of failing every write.
   *
   * @throws {ConfigError} naming the folder when it does not exist or is not a folder, or the
   *   path when it is a folder.
   */
  checkPath(): void {
    const folder = dirname(this.path);
    let isFolder: boolean;
    try {
      isFolder = statSync(folder).isDirectory();
    } catch (error) {
      throw new ConfigError(`invalid state file ${this.path}: ${describeFileError(error, "write", this.path)}`, { cause: error });
    }
    if (!isFolder) {
      throw new ConfigError(`invalid state file ${this.path}: ${folder} is not a folder; pick a path in an existing folder`);
    }
    if (isFolderAt(this.path, true)) {
      throw new ConfigError(`invalid state file ${this.path}: it is a folder; name a file in it, such as ${join(this.path, "state.json")}`);
    }
  }

  /** Says what the first write does with a state file that could not be read. */
  #nextWriteAfterReadFailure(): string {
    const folder = dirname(this.path);
    const owner = fileOwner(this.path);
    switch (moveDeniedReason(this.path, owner)) {
      case "folder":
        return `and nothing is saved, because this user cannot write the folder ${folder} to move the file aside`;
      case "sticky":
        return `and nothing is saved, because the sticky folder ${folder} keeps this user from moving the file of uid ${owner} aside`;
      default:
        return `and the first write moves the file, if there is one, to ${this.badCopyPath}`;
    }
  }

  /**
   * Reads the saved backends, grouped by provider name. A missing file gives an empty map.
   * An unreadable or invalid file is logged and also gives an empty map, and invalid
   * entries are skipped, because the state only helps start-up and must never stop it.
   * A file that was not read in full is kept at `badCopyPath`, replacing an earlier copy. An
   * invalid one is copied there now. One that could not be read (no permission, too large,
   * not a regular file) is moved there by the first write, unless it is a folder. Entries that `check` rejects
   * count as invalid.
   */
  load(check?: SavedBackendCheck): Map<string, BackendSet> {
    let text: string;
    try {
      text = readRegularFile(this.path, MAX_STATE_BYTES).toString("utf8");
    } catch (error) {
      if ((error as { code?: string }).code !== "ENOENT") {
        // A folder is never moved aside, and each write fails on it until it is gone.
        const folder = isFolderAt(this.path, false);
        this.#moveBeforeWrite = !folder;
        const next = folder ? "and nothing is written while a folder is at its path" : this.#nextWriteAfterReadFailure();
        this.#log.warn(`read state file failed; starting without saved backends, ${next}`, { file: this.path, err: describeFileError(error) });
      }

      return new Map();
    }

    let saved: ReturnType<typeof parseSavedState>;
    try {
      saved = parseSavedState(text, check);
    } catch (error) {
      this.#log.warn("invalid state file; starting without saved backends", { file: this.path, err: (error as Error).message, ...this.#keepBadCopy(text) });

      return new Map();
    }

    for (const entry of saved.skipped.slice(0, MAX_SKIPPED_LINES)) {
      this.#log.warn("skipped an invalid saved backend", { file: this.path, entry: entry.index, id: entry.id, err: entry.reason });
    }
    if (saved.skipped.length > MAX_SKIPPED_LINES) {
      this.#log.warn("skipped more invalid saved backends", { file: this.path, count: saved.skipped.length - MAX_SKIPPED_LINES });
    }
    if (saved.skipped.length > 0) {
      const copy = this.#keepBadCopy(text);
      this.#log.warn("state file has invalid entries; kept a copy before it is rewritten without them", { file: this.path, skipped: saved.skipped.length, ...copy });
    }
    this.#log.info(`loaded ${saved.backends.length} saved backends from ${this.path}${saved.savedAt === undefined ? "" : ` (saved at ${saved.savedAt})`}`, { file: this.path });
    this.#savedDisabled = new Set(saved.backends.filter((entry) => entry.disabled).map((entry) => entry.backend.id));

    return groupByProvider(saved.backends);
  }

  /** Returns the ids that the file read by `load` marks disabled, in file order. */
  savedDisabledIds(): string[] {
    return [...this.#savedDisabled];
  }

  /**
   * Writes `text` to `badCopyPath` with `writeFileAtomically`, replacing a symlink there, and
   * returns log fields with the copy's path, or the reason no copy was kept. Without a copy, the first write moves the file there instead.
   */
  #keepBadCopy(text: string): Record<string, string> {
    try {
      writeFileAtomically(this.badCopyPath, text);
    } catch (error) {
      this.#moveBeforeWrite = true;

      return { copyErr: `keeping a copy at ${this.badCopyPath} failed, so the first write moves the file there: ${describeFileError(error, "write", this.badCopyPath)}` };
    }

    return { copy: this.badCopyPath };
  }

  /**
   * Keeps `set`, saved backends of `provider` that are not served now, in every file written
   * from now on, such as those of the admin API while it is off. An entry whose id a running
   * provider publishes later is dropped, with a warning, because the file has one entry per id.
   */
  carry(provider: string, set: BackendSet): void {
    this.#carried.push(...set.backends.map((backend) => ({ backend, provider })));
  }

  /**
   * Writes the set atomically with `writeFileAtomically`, so a crash leaves either the old or
   * the new state, and a symlink planted in the folder is replaced, never written through.
   * A file that `load` did not read in full and did not copy is first moved to `badCopyPath`,
   * and while that move fails, nothing is written. A failed write is logged once per failure
   * streak and tried again after a back-off, until a newer set replaces it.
   * Backends for which `isDisabled` returns true are saved with `"disabled": true`; carried
   * ones keep the mark they were loaded with.
   */
  save(set: BackendSet, providerOf: (id: string) => string | undefined, isDisabled: (id: string) => boolean = () => false): void {
    this.#schedule.runNow(() => this.#write(set, providerOf, isDisabled));
  }

  /** Writes the set, logs the first failure of a streak and the end of one, and returns whether it was written. */
  #write(set: BackendSet, providerOf: (id: string) => string | undefined, isDisabled: (id: string) => boolean): boolean {
    const state = {
      version: STATE_VERSION,
      savedAt: new Date().toISOString(),
      backends: [
        ...set.backends.map((backend) => savedEntry(backend, providerOf(backend.id) ?? "unknown", isDisabled(backend.id))),
        ...this.#carriedOutside(set).map(({ backend, provider }) => savedEntry(backend, provider, this.#savedDisabled.has(backend.id))),
      ],
    };
    try {
      writeFileAtomically(this.path, JSON.stringify(state, null, 2) + "\n", () => this.#moveUnreadFile());
    } catch (error) {
      if (this.#failures === 0) {
        this.#log.warn("write state file failed; the running set is not saved until a retry succeeds", { file: this.path, err: describeFileError(error, "write", this.path) });
      }
      this.#failures++;

      return false;
    }
    if (this.#failures > 0) {
      this.#log.info("state file written again after failures", { file: this.path, failures: this.#failures });
    }
    this.#failures = 0;
    this.#written = true;

    return true;
  }

  /**
   * Saves the set now, or when `minIntervalMs` has passed since the last write. Under a
   * burst of changes only the latest set is written, so the event loop does not wait on
   * one fsync per change.
   */
  saveSoon(set: BackendSet, providerOf: (id: string) => string | undefined, isDisabled: (id: string) => boolean = () => false): void {
    this.#schedule.runSoon(() => this.#write(set, providerOf, isDisabled));
  }

  /**
   * Moves a file that `load` did not read in full to `badCopyPath`, when no copy keeps it yet.
   * rename(2) needs no read permission on the file, only write permission on its folder, as
   * the write that follows needs anyway.
   *
   * @throws {Error} naming both paths when the rename fails for another reason than a file that is gone.
   */
  #moveUnreadFile(): void {
    if (!this.#moveBeforeWrite) {
      return;
    }
    // NOTE: a folder swapped in between this check and the rename would still be moved.
    if (isFolderAt(this.path, false)) {
      throw new Error(`${this.path} is a folder now, so it is neither moved aside nor replaced; remove it or pick another path for the state file`);
    }
    try {
      renameSync(this.path, this.badCopyPath);
      this.#log.warn("moved the state file that was not read in full aside before writing the running set", { file: this.path, copy: this.badCopyPath });
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code !== "ENOENT") {
        throw new Error(`moving ${this.path}, which was not read in full, to ${this.badCopyPath} failed, so it is not overwritten: ${this.#describeMoveError(error)}`, { cause: error });
      }
    }
    this.#moveBeforeWrite = false;
  }

  /** Describes why the rename of `#moveUnreadFile` failed, naming the path that caused it, with the fix. */
  #describeMoveError(error: unknown): string {
    switch ((error as { code?: string }).code) {
      case "EACCES":
      case "EPERM":
        // The temporary file was written, so the folder is writable: a sticky folder denies the rename of another user's file.
        return "permission denied; give the file to the user tinylb runs as (chown), or move it away";
      case "EISDIR":
        // A file is never moved over a folder, so the folder is at the copy's path.
        return `${this.badCopyPath} is a folder; remove it or move it away`;
    }

    return describeFileError(error, "write", this.path);
  }

  /** Writes at once a set that `saveSoon` holds back or whose write failed. SIGHUP calls it. */
  flush(): void {
    this.#schedule.flush();
  }

  /** Writes a held-back or failed set one last time at shutdown, and retries no more. */
  close(): void {
    this.#schedule.close();
    if (this.#failures > 0) {
      const next = this.#written ? "the next start loads the last set written" : "no set was written since this start, so the next start finds the file as it was before";
      this.#log.warn(`stopping with the running set not saved; ${next}`, { file: this.path, failures: this.#failures });
    }
  }

  /** Returns the carried entries whose id `set` does not contain, and drops the others for good. */
  #carriedOutside(set: BackendSet): { backend: Backend; provider: string }[] {
    const outside = this.#carried.filter(({ backend }) => set.get(backend.id) === undefined);
    for (const { backend, provider } of this.#carried) {
      if (set.get(backend.id) !== undefined) {
        this.#log.warn("dropped a saved backend whose id a running provider now publishes", { file: this.path, backend: backend.id, target: backend.target, provider });
      }
    }
    this.#carried = outside;

    return outside;
  }
}

/** Returns whether `path`, or with `followLinks` the file a symlink there names, is a folder. False when it cannot be checked. */
/** Returns the uid that owns the file at `path`, or undefined when it cannot be read. */
function fileOwner(path: string): number | undefined {
  try {
    return lstatSync(path).uid;
  } catch {
    return undefined;
  }
}

function isFolderAt(path: string, followLinks: boolean): boolean {
  try {
    return (followLinks ? statSync : lstatSync)(path, { throwIfNoEntry: false })?.isDirectory() === true;
  } catch {
    // The folder above cannot be searched; the read or the write reports it.
    return false;
  }
}

/** Returns the entry of one backend in the file; `disabled` is left out for an enabled backend, as older files have it. */
function savedEntry(backend: Backend, provider: string, disabled: boolean): { id: string; target: string; provider: string; disabled?: true } {
  const entry = { id: backend.id, target: backend.target, provider };

  return disabled ? { ...entry, disabled: true } : entry;
}

function groupByProvider(entries: SavedBackend[]): Map<string, BackendSet> {
  const byProvider = new Map<string, Backend[]>();
  for (const entry of entries) {
    const list = byProvider.get(entry.provider) ?? [];
    list.push(entry.backend);
    byProvider.set(entry.provider, list);
  }

  return new Map([...byProvider].map(([provider, backends]) => [provider, new BackendSet(backends)]));
}
