import { type BackendSet, diffBackendSets } from "../backend-set.ts";
import type { Logger } from "../logger.ts";
import { RateLimitedLog } from "../rate-limited-log.ts";
import { type FileWriter, findFileWriters } from "./file-writers.ts";

/**
 * Milliseconds a save that removes or retargets a backend of the file, or drops a setting at
 * any depth, waits before it is applied, unless the file changes again. An in-place write that pauses longer than the quiet
 * period leaves a file cut short, often still valid with fewer backends (or none), and applying
 * it would close every connection of the backends not written yet. A save by rename is whole,
 * but a file event does not show how the file was written, so it waits too.
 */
export const SETTLE_MS = 1000;

/**
 * Milliseconds between the info lines of waits, so that a file rewritten more often than
 * SETTLE_MS logs one line per interval, with the count of the lines left out, rather than one
 * per rewrite.
 */
const WAIT_LOG_INTERVAL_MS = 10_000;

/**
 * Returns the key paths of `before` that `after` lacks, such as `probe` when a file is cut
 * before it, or `probe.fall` when it is cut inside the `probe` block. A path under another
 * dropped path is left out, so a dropped block is named once.
 */
export function droppedSettings(before: readonly string[], after: readonly string[]): string[] {
  const remaining = new Set(after);
  const dropped = before.filter((path) => !remaining.has(path));
  const droppedSet = new Set(dropped);

  return dropped.filter((path) => !droppedSet.has(parentPath(path)));
}

function parentPath(path: string): string {
  const end = path.lastIndexOf(".");

  return end === -1 ? "" : path.slice(0, end);
}

/** Returns true when `after` lacks an id of `before` or gives one of its ids another target. */
export function removesOrRetargets(before: BackendSet, after: BackendSet): boolean {
  return before.backends.some((backend) => after.get(backend.id)?.target !== backend.target);
}

/**
 * The wait of a config file save that removes or retargets backends: it applies the save
 * only if the file still reads the same text SETTLE_MS later. One save waits at a time, so a
 * file rewritten more often than SETTLE_MS delays such a save until it rests. While another
 * process still has the file open for writing, as `cat > tinylb.yaml` does until its input
 * ends, the save waits on, however long its writer pauses; SIGHUP applies it at once.
 *
 * `R` is one read of the file, whose `text` is undefined when the file could not be read.
 */
export class SaveSettle<R extends { text: string | undefined }> {
  readonly #path: string;
  readonly #emptyingLog: RateLimitedLog;
  readonly #removingLog: RateLimitedLog;
  readonly #droppingLog: RateLimitedLog;
  readonly #writerLog: RateLimitedLog;
  readonly #findWriters: (path: string) => Promise<FileWriter[]>;
  /** Counts the waits started and cancelled, so that a scan for writers that ends after its wait was replaced does nothing. */
  #generation = 0;
  readonly #read: () => R;
  readonly #apply: (read: R) => void;
  #timer: Timer | undefined;

  /**
   * @param read reads the file now.
   * @param apply applies a read of the file once it has settled. It gets the read that was
   *   compared, so the file is not read again in between.
   * @param findWriters finds the other processes that have the file open for writing.
   */
  constructor(path: string, log: Logger, read: () => R, apply: (read: R) => void, findWriters: (path: string) => Promise<FileWriter[]> = findFileWriters) {
    this.#path = path;
    this.#emptyingLog = new RateLimitedLog(log, "info", WAIT_LOG_INTERVAL_MS);
    this.#removingLog = new RateLimitedLog(log, "info", WAIT_LOG_INTERVAL_MS);
    this.#droppingLog = new RateLimitedLog(log, "info", WAIT_LOG_INTERVAL_MS);
    this.#writerLog = new RateLimitedLog(log, "info", WAIT_LOG_INTERVAL_MS);
    this.#findWriters = findWriters;
    this.#read = read;
    this.#apply = apply;
  }

  /**
   * Starts the wait for the save `text`, which changes `published` to `set` and drops the
   * settings `dropped`, in place of any earlier wait. Each kind of wait (an empty set, a smaller
   * or retargeted set, dropped settings) is logged at most once per WAIT_LOG_INTERVAL_MS.
   */
  start(text: string | undefined, published: BackendSet, set: BackendSet, dropped: readonly string[] = []): void {
    this.cancel();
    const change = diffBackendSets(published, set);
    const fields = { file: this.#path, removing: change.removed.length, retargeting: change.retargeted.length };
    if (set.size === 0 && published.size > 0) {
      this.#emptyingLog.log("config file lists no backends; removing them in 1 s unless it changes again, as a save may be in progress", fields);
    } else if (removesOrRetargets(published, set)) {
      this.#removingLog.log("config file removes or retargets backends; applying it in 1 s unless it changes again, as a save may be in progress", fields);
    } else {
      this.#droppingLog.log("config file drops settings; applying it in 1 s unless it changes again, as a save may be in progress", { file: this.#path, dropped: dropped.join(",") });
    }

    this.#wait(text);
  }

  /** Applies the save `text` once the file still reads the same SETTLE_MS later and no other process has it open for writing. */
  #wait(text: string | undefined): void {
    const generation = this.#generation;
    this.#timer = setTimeout(async () => {
      this.#timer = undefined;
      // A changed file has its own file event, which reads it.
      if (this.#read().text !== text) {
        return;
      }
      const writers = await this.#findWriters(this.#path);
      // The file is read again after the scan, which may take a while on a busy node.
      const read = this.#read();
      if (generation !== this.#generation || read.text !== text) {
        return;
      }
      if (writers.length > 0) {
        this.#writerLog.log("config file is still open for writing; waiting until it is closed before applying it, or send SIGHUP to apply it now", {
          file: this.#path,
          writers: writers.map((writer) => `${writer.command}[${writer.pid}]`).join(","),
        });
        this.#wait(text);

        return;
      }

      this.#apply(read);
    }, SETTLE_MS);
  }

  /** Stops the wait, if any, so its save is not applied. */
  cancel(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#generation++;
  }
}
