import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { z } from "zod";
import { type Backend, createBackend } from "./backend.ts";
import { BackendSet } from "./backend-set.ts";
import { type Logger, silentLogger } from "./logger.ts";
import { describeFileError } from "./file-errors.ts";

/** Version of the state file layout; a file with another version is ignored. */
const STATE_VERSION = 1;

/** Largest state file read, in bytes. */
const MAX_STATE_BYTES = 4 * 1024 * 1024;

const stateSchema = z.strictObject({
  version: z.literal(STATE_VERSION),
  savedAt: z.string(),
  backends: z.array(z.strictObject({ id: z.string(), target: z.string(), provider: z.string() })).max(100_000),
});

/**
 * The last applied backend set, saved so that a restarted balancer whose providers are
 * not reachable yet still serves the last known backends.
 *
 * Each backend is saved with the provider it came from. At start-up the saved entries
 * seed each provider's slot in the union until that provider publishes for the first
 * time. Entries of providers that are no longer configured are dropped.
 */
export class StateFile {
  readonly path: string;
  readonly #log: Logger;
  readonly #minIntervalMs: number;
  #failing = false;
  #lastWrite = -Infinity;
  #pending: (() => void) | undefined;
  #timer: Timer | undefined;

  /** @param minIntervalMs minimum milliseconds between two writes by `saveSoon` */
  constructor(path: string, logger: Logger = silentLogger, minIntervalMs = 1000) {
    this.path = path;
    this.#minIntervalMs = minIntervalMs;
    this.#log = logger.with({ component: "state-file" });
  }

  /**
   * Reads the saved backends, grouped by provider name. A missing file gives an empty map.
   * An unreadable or invalid file is logged and also gives an empty map, because the state
   * only helps start-up and must never stop it.
   */
  load(): Map<string, BackendSet> {
    let text: string;
    try {
      text = readFileSync(this.path, "utf8");
    } catch (error) {
      if ((error as { code?: string }).code !== "ENOENT") {
        this.#log.warn("read state file failed; starting without saved backends", { file: this.path, err: describeFileError(error) });
      }

      return new Map();
    }

    try {
      if (text.length > MAX_STATE_BYTES) {
        throw new Error(`the file has more than ${MAX_STATE_BYTES} bytes`);
      }

      return groupByProvider(stateSchema.parse(JSON.parse(text)).backends);
    } catch (error) {
      let detail = (error as Error).message;
      if (error instanceof z.ZodError) {
        detail = error.issues.map((issue) => `${issue.path.join(".") || "(top level)"}: ${issue.message}`).join("; ");
      }
      this.#log.warn("invalid state file; starting without saved backends", { file: this.path, err: detail });

      return new Map();
    }
  }

  /**
   * Writes the set atomically: to a temporary file in the same directory, flushed to disk,
   * then renamed over the old file, so a crash leaves either the old or the new state.
   * A failed write is logged once per failure streak and otherwise ignored.
   */
  save(set: BackendSet, providerOf: (id: string) => string | undefined): void {
    this.#cancelPending();
    this.#lastWrite = performance.now();
    const state = {
      version: STATE_VERSION,
      savedAt: new Date().toISOString(),
      backends: set.backends.map((backend) => ({ id: backend.id, target: backend.target, provider: providerOf(backend.id) ?? "unknown" })),
    };
    const temporary = `${this.path}.${process.pid}.tmp`;
    try {
      const fd = openSync(temporary, "w", 0o600);
      try {
        writeSync(fd, JSON.stringify(state, null, 2) + "\n");
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(temporary, this.path);
    } catch (error) {
      this.#removeQuietly(temporary);
      if (!this.#failing) {
        this.#log.warn("write state file failed; the running set is not saved", { file: this.path, err: describeFileError(error, "write", this.path) });
      }
      this.#failing = true;

      return;
    }
    if (this.#failing) {
      this.#log.info("state file written again after failures", { file: this.path });
    }
    this.#failing = false;
  }

  /**
   * Saves the set now, or when `minIntervalMs` has passed since the last write. Under a
   * burst of changes only the latest set is written, so the event loop does not wait on
   * one fsync per change.
   */
  saveSoon(set: BackendSet, providerOf: (id: string) => string | undefined): void {
    const wait = this.#lastWrite + this.#minIntervalMs - performance.now();
    if (wait <= 0) {
      this.save(set, providerOf);

      return;
    }

    this.#pending = () => this.save(set, providerOf);
    this.#timer ??= setTimeout(() => this.flush(), wait);
  }

  /** Writes a set that `saveSoon` is holding back, if any. */
  flush(): void {
    const pending = this.#pending;
    this.#cancelPending();
    pending?.();
  }

  #cancelPending(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pending = undefined;
  }

  #removeQuietly(path: string): void {
    try {
      unlinkSync(path);
    } catch {
      // Never created, or already gone.
    }
  }
}

function groupByProvider(entries: { id: string; target: string; provider: string }[]): Map<string, BackendSet> {
  const byProvider = new Map<string, Backend[]>();
  for (const entry of entries) {
    const list = byProvider.get(entry.provider) ?? [];
    list.push(createBackend(entry.id, entry.target));
    byProvider.set(entry.provider, list);
  }

  return new Map([...byProvider].map(([provider, backends]) => [provider, new BackendSet(backends)]));
}
