import { BackendSet } from "../backend-set.ts";
import { ConfigError, decodeConfigText, type FileConfig, loadConfigText, readConfigBytes, settingKeyPaths } from "../config.ts";
import { type Logger, silentLogger } from "../logger.ts";
import { RateLimitedLog } from "../rate-limited-log.ts";
import { ConfigWatch } from "./config-watch.ts";
import type { Provider, PublishBackendSet } from "./provider.ts";
import { droppedSettings, removesOrRetargets, SaveSettle } from "./save-settle.ts";

/** Settings of a file provider. */
export interface FileProviderOptions {
  /** The config file whose `backends` list this provider publishes. */
  path: string;
  /**
   * Whether to watch the file's folder (and that of its symlink target) and apply changes without a signal.
   * @default true
   */
  watch?: boolean;
  /**
   * Quiet milliseconds after the last file event before the file is read, so a burst of
   * events from one save leads to one read.
   * @default 200
   */
  debounceMs?: number;
  /**
   * Milliseconds between re-reads that do not wait for a file event: a backstop for
   * changes the watch cannot see, such as a link in a third folder of a symlink chain, and
   * for a watch that could not be set up. 0 turns polling off.
   * @default 30000
   */
  pollIntervalMs?: number;
  /** Called with each re-read config that was accepted (not the one read at start), for its other settings. */
  onAccepted?: (config: FileConfig) => void;
  /** Called with each config whose backends were just published, the one read at start included. */
  onPublished?: (config: FileConfig) => void;
  /** Checks a config beyond its schema before it is accepted; a ConfigError rejects it. */
  check?: (config: FileConfig) => void;
  /**
   * The file's text as read for the settings at start. `start` publishes the backends of this
   * text rather than read the file again, so the settings and the backends of the start agree.
   */
  startText?: string;
  /** @default a logger that writes nothing */
  logger?: Logger;
}

/** One read of the config file. */
interface ConfigRead {
  /**
   * The file's text, or undefined when the read failed. Bytes that are not valid UTF-8 are
   * decoded with replacement characters, so that a change of such a file is still seen.
   */
  text: string | undefined;
  /** Why the text cannot be loaded: a failed read, or bytes that are not valid UTF-8. */
  error: ConfigError | undefined;
  /** Error code of a failed read, such as ENOENT or EISDIR. */
  errorCode: string | undefined;
}

/** The event that caused a read of the file; "settled" is the second read of a save that removes or retargets backends. */
export type ReloadReason = "start" | "SIGHUP" | "file event" | "poll" | "settled";

/** The result of the latest reload of the config file, as `tinylb status` shows it. */
export interface ReloadResult {
  /** Time of the read, in ISO 8601 (UTC). */
  at: string;
  reason: ReloadReason;
  /** "settling" is a save that removes or retargets backends, applied once it has settled (see SETTLE_MS). */
  result: "applied" | "rejected" | "settling";
  /** The rejection message, for a rejected reload. The last good config keeps serving then. */
  error?: string;
}

/**
 * Milliseconds between the info lines of SIGHUP reloads that change nothing, so a burst of
 * signals logs one line, with the count of the lines left out, rather than one per signal.
 */
const UNCHANGED_RELOAD_LOG_MS = 10_000;

/**
 * The config file's `backends` list, re-read when the file changes or on SIGHUP.
 *
 * It watches folders rather than the file (see `ConfigWatch`), so it detects in-place
 * writes, saves by rename (editors, `mv`) and Kubernetes ConfigMap updates (the `..data`
 * symlink swapped to a new folder). It also detects writes to a symlink's target in another
 * folder, and saves into a config folder that was deleted and made again. A file that is
 * missing, unreadable, empty or invalid is logged with the file, the field path and the
 * value. Nothing is published then, so the last good set keeps serving until a good version
 * appears.
 * A save that removes or retargets a backend is applied only when the file still reads the
 * same `SETTLE_MS` later. A SIGHUP applies such a file at once.
 */
export class FileProvider implements Provider {
  readonly name = "file";
  /** Reads of changed content (and every SIGHUP), accepted or not. A save that waits to settle counts once. */
  reloads = 0;
  /** Reloads rejected because the file was missing, unreadable or invalid. */
  reloadFailures = 0;
  /** The latest reload that read changed content or came from a SIGHUP; undefined before the first one after start. */
  lastReload: ReloadResult | undefined;
  readonly #options: Required<Omit<FileProviderOptions, "onAccepted" | "onPublished" | "check" | "startText">> & Pick<FileProviderOptions, "onAccepted" | "onPublished" | "check" | "startText">;
  readonly #log: Logger;
  #publish: PublishBackendSet | undefined;
  #watch: ConfigWatch | undefined;
  #debounce: Timer | undefined;
  #poll: Timer | undefined;
  #pendingSince: number | undefined;
  /** Text of the last read, good or bad, so an unchanged file is not reported again. */
  #lastText: string | undefined;
  /** Error code of the last read that failed, such as ENOENT or EISDIR; undefined after a read that succeeded. */
  #lastReadError: string | undefined;
  /** Text of the config applied last, against which a SIGHUP read is compared. */
  #appliedText: string | undefined;
  /** Key paths of the config applied last, such as `probe.interval`. A save that drops one waits to settle. */
  #appliedKeys: string[] = [];
  #unchangedReloadLog: RateLimitedLog;
  #unchangedRejectionLog: RateLimitedLog;
  #lastError: string | undefined;
  /** The set published last. */
  #published = BackendSet.EMPTY;
  readonly #settle: SaveSettle<ConfigRead>;

  constructor(options: FileProviderOptions) {
    this.#options = { watch: true, debounceMs: 200, pollIntervalMs: 30_000, logger: silentLogger, ...options };
    this.#log = this.#options.logger.with({ component: "file-provider" });
    this.#unchangedReloadLog = new RateLimitedLog(this.#log, "info", UNCHANGED_RELOAD_LOG_MS);
    this.#unchangedRejectionLog = new RateLimitedLog(this.#log, "warn", UNCHANGED_RELOAD_LOG_MS);
    this.#settle = new SaveSettle(this.#options.path, this.#log, () => this.#read(), (read) => this.#reloadFrom("settled", read));
  }

  /** The config file, as given to `--config`. */
  get path(): string {
    return this.#options.path;
  }

  start(publish: PublishBackendSet): void {
    this.#publish = publish;
    const startText = this.#options.startText;
    this.#reloadFrom("start", startText === undefined ? this.#read() : { text: startText, error: undefined, errorCode: undefined });
    if (this.#options.watch) {
      this.#startWatching();
      if (this.#options.pollIntervalMs > 0) {
        this.#poll = setInterval(() => this.#pollOnce(), this.#options.pollIntervalMs);
      }
    }
  }

  stop(): void {
    this.#publish = undefined;
    this.#watch?.close();
    this.#watch = undefined;
    clearTimeout(this.#debounce);
    this.#settle.cancel();
    clearInterval(this.#poll);
  }

  /**
   * Reads the file and publishes its backends. A read for a file event or a poll whose
   * content equals the last read does nothing; a SIGHUP always reads, logs and counts.
   * Returns false when the file was rejected.
   */
  reload(reason: ReloadReason): boolean {
    return this.#publish === undefined ? false : this.#reloadFrom(reason, this.#read());
  }

  /**
   * Applies one read of the file, as `reload` describes. Every part of the reload (the
   * settings, the backends and the key paths) comes from `read`, so a save that lands while
   * the reload runs cannot mix two versions of the file.
   */
  #reloadFrom(reason: ReloadReason, read: ConfigRead): boolean {
    const publish = this.#publish;
    if (publish === undefined) {
      return false;
    }

    const path = this.#options.path;
    const text = read.text;
    const readError = read.errorCode;
    const forced = reason === "SIGHUP" || reason === "start" || reason === "settled";
    // A file that cannot be read counts as unchanged only when its last read failed with the
    // same error, so a folder made where the file was missing is reported too.
    const unchanged = text === this.#lastText && (text !== undefined || (this.#lastError !== undefined && readError === this.#lastReadError));
    if (!forced && unchanged) {
      return this.#lastError === undefined;
    }
    this.#lastText = text;
    this.#lastReadError = readError;
    // A settled read applies a save that was read and counted when its file event came.
    if (reason !== "start" && reason !== "settled") {
      this.reloads++;
    }

    let config: FileConfig;
    try {
      config = this.#load(read);
    } catch (error) {
      if (!(error instanceof ConfigError)) {
        throw error;
      }
      this.#rejected(error.message, reason, forced);
      this.#recordReload(reason, "rejected", error.message);

      return false;
    }

    const set = new BackendSet(config.backends ?? []);
    const keys = text === undefined ? [] : settingKeyPaths(path, text);
    const dropped = droppedSettings(this.#appliedKeys, keys);
    this.#settle.cancel();
    if ((reason === "file event" || reason === "poll") && (removesOrRetargets(this.#published, set) || dropped.length > 0)) {
      this.#settle.start(text, this.#published, set, dropped);
      this.#recordReload(reason, "settling");

      return true;
    }

    // A good save after a rejected one is logged at info, so the operator sees the fix taken.
    const recovered = this.#lastError !== undefined;
    this.#lastError = undefined;
    if (reason !== "start") {
      this.#options.onAccepted?.(config);
    }
    this.#logApplied(reason, recovered, text !== this.#appliedText, set.size);
    this.#appliedText = text;
    this.#appliedKeys = keys;
    publish(set);
    this.#published = set;
    this.#options.onPublished?.(config);
    this.#recordReload(reason, "applied");

    return true;
  }

  #recordReload(reason: ReloadReason, result: ReloadResult["result"], error?: string): void {
    if (reason !== "start") {
      this.lastReload = { at: new Date().toISOString(), reason, result, ...(error === undefined ? {} : { error }) };
    }
  }

  /**
   * Logs an applied config. A save that changes the set is logged by the server with
   * provider=file, so a save logs at debug unless it fixes a rejected one. A reload the
   * operator requested gets an info line, at most one per UNCHANGED_RELOAD_LOG_MS when it
   * changed nothing.
   */
  #logApplied(reason: ReloadReason, recovered: boolean, changed: boolean, count: number): void {
    const message = reason === "start" ? "config loaded" : "config reloaded";
    const fields = { file: this.#options.path, reason, count };
    if (reason === "SIGHUP" && !changed && !recovered) {
      this.#unchangedReloadLog.log(message, { ...fields, changed: false });

      return;
    }

    const level = reason === "start" || reason === "SIGHUP" || recovered ? "info" : "debug";
    this.#log.log(level, message, fields);
  }

  /** Reads the file. Each reload reads it once and takes every part from that read. */
  #read(): ConfigRead {
    const path = this.#options.path;
    let bytes: Buffer;
    try {
      bytes = readConfigBytes(path);
    } catch (error) {
      if (!(error instanceof ConfigError)) {
        throw error;
      }
      const cause = error.cause as NodeJS.ErrnoException | undefined;

      return { text: undefined, error, errorCode: cause?.code ?? String(cause) };
    }

    try {
      return { text: decodeConfigText(path, bytes), error: undefined, errorCode: undefined };
    } catch (error) {
      if (!(error instanceof ConfigError)) {
        throw error;
      }

      return { text: bytes.toString("utf8"), error, errorCode: undefined };
    }
  }

  // NOTE: a YAML file cut at a line boundary can still parse with fewer backends. SETTLE_MS
  // delays such a read, and SaveSettle waits while a writer has the file open. An in-place
  // write is still applied half-way when it pauses longer than that with the file closed, or
  // by a writer that /proc does not show (see findFileWriters).
  #load(read: ConfigRead): FileConfig {
    if (read.text !== undefined && read.text.trim() === "") {
      throw new ConfigError(`invalid config ${this.#options.path}: the file is empty (perhaps still being written)`);
    }
    if (read.error !== undefined) {
      throw read.error;
    }
    if (read.text === undefined) {
      throw new Error(`invariant violated: a read of config ${this.#options.path} has neither text nor error`);
    }

    const config = loadConfigText(this.#options.path, read.text);
    this.#options.check?.(config);

    return config;
  }

  #rejected(message: string, reason: ReloadReason, forced: boolean): void {
    if (reason !== "start") {
      this.reloadFailures++;
    }
    const repeated = message === this.#lastError;
    if (!forced && repeated) {
      return;
    }

    this.#lastError = message;
    const fields = { file: this.#options.path, reason, err: message };
    if (reason === "start") {
      // The start accepts an empty file as one without settings, and this read rejects it as one still being written.
      this.#log.warn("config file rejected at start; serving no backends from it until a good version is saved", fields);
    } else if (reason === "SIGHUP" && repeated) {
      // The same rejection again, as from a burst of signals: one line per interval.
      this.#unchangedRejectionLog.log("config reload rejected; keeping the last good backend set", fields);
    } else {
      this.#log.warn("config reload rejected; keeping the last good backend set", fields);
    }
  }

  #startWatching(): void {
    this.#watch = new ConfigWatch(this.#options.path, () => this.#scheduleReload(), this.#log);
    this.#watch.refresh();
  }

  /** The folders watched now, sorted; empty when watching is off. */
  get watchedFolders(): string[] {
    return this.#watch?.folders ?? [];
  }

  /**
   * Restarts the quiet period: every event in the directory pushes the read back, but for
   * no more than ten quiet periods in all, so a directory that never goes quiet is still read.
   */
  #scheduleReload(): void {
    const now = performance.now();
    this.#pendingSince ??= now;
    const waited = now - this.#pendingSince;
    const delay = Math.max(0, Math.min(this.#options.debounceMs, this.#options.debounceMs * 10 - waited));
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => {
      this.#pendingSince = undefined;
      this.reload("file event");
    }, delay);
  }

  #pollOnce(): void {
    this.#watch?.refresh();
    this.reload("poll");
  }
}

