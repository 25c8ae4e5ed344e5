import type { BackendSet } from "./backend-set.ts";
import { type Logger, silentLogger } from "./logger.ts";

/**
 * The origin of a disabled mark: the admin API (`tinylb disable`, or the state file that
 * saved such a mark), or the config file's `disabled: true` key.
 */
export type DisableOrigin = "admin" | "config";

/**
 * The backend ids taken out of the rotation, in one thread, each with the origin of its mark.
 *
 * The mark belongs to the id, not to its target or provider: it stays when a provider
 * retargets or republishes the id, and `setReplaced` forgets it once the id leaves the set. The
 * main thread's copy is the one the admin API and the config file change, and relay workers
 * keep a copy of its ids (see `replace`), in which every mark has the origin "admin". The
 * state file saves the marks of origin "admin" (see BackendSources).
 */
export class DisabledBackends {
  /** Disabled ids, in insertion order, and the origin of each mark. */
  readonly #ids = new Map<string, DisableOrigin>();
  readonly #listeners: (() => void)[] = [];
  readonly #log: Logger;
  readonly #logChanges: boolean;

  /**
   * @param log the server's logger.
   * @param logChanges true in the main thread, which logs each forgotten mark at info level.
   *   Relay workers pass false and log them at debug level, so each is logged once at info.
   */
  constructor(log: Logger = silentLogger, logChanges = true) {
    this.#log = log;
    this.#logChanges = logChanges;
  }

  /** Number of disabled ids. */
  get size(): number {
    return this.#ids.size;
  }

  /** Returns true when the id is disabled. */
  has(id: string): boolean {
    return this.#ids.has(id);
  }

  /** Returns the disabled ids, in insertion order. */
  ids(): string[] {
    return [...this.#ids.keys()];
  }

  /** Returns the origin of the mark of `id`, or undefined when the id is not disabled. */
  originOf(id: string): DisableOrigin | undefined {
    return this.#ids.get(id);
  }

  /** Calls `listener` after every change of the disabled ids. */
  onChange(listener: () => void): void {
    this.#listeners.push(listener);
  }

  /**
   * Marks an id disabled; returns false when it was disabled already. A mark of origin
   * "admin" replaces a mark of origin "config", so that a later reload that drops the file's
   * key leaves the operator's mark in place. A mark of origin "config" never replaces one of
   * origin "admin".
   */
  disable(id: string, origin: DisableOrigin = "admin"): boolean {
    const existing = this.#ids.get(id);
    if (existing !== undefined) {
      if (origin === "admin" && existing === "config") {
        this.#ids.set(id, origin);
        // The ids are unchanged, but the marks that the state file saves are not.
        this.#changed();
      }

      return false;
    }

    this.#ids.set(id, origin);
    this.#changed();

    return true;
  }

  /** Removes the mark of an id; returns false when it was not disabled. */
  enable(id: string): boolean {
    if (!this.#ids.delete(id)) {
      return false;
    }

    this.#changed();

    return true;
  }

  /** Replaces every mark with `ids`, as a relay worker does with the main thread's list. */
  replace(ids: readonly string[]): void {
    if (ids.length === this.#ids.size && ids.every((id) => this.#ids.has(id))) {
      return;
    }

    this.#ids.clear();
    for (const id of ids) {
      this.#ids.set(id, "admin");
    }
    this.#changed();
  }

  /**
   * Forgets the marks of ids that left the set, with a line naming each, once `set` replaced
   * the set. Warns when `set` has backends and every one of them is disabled.
   */
  setReplaced(set: BackendSet): void {
    const level = this.#logChanges ? "info" : "debug";
    const forgotten = [...this.#ids.keys()].filter((id) => set.get(id) === undefined);
    for (const id of forgotten) {
      this.#ids.delete(id);
      this.#log.log(level, "disabled backend left the set; its disabled state is forgotten", { backend: id });
    }
    if (forgotten.length > 0) {
      this.#changed();
    }
    if (this.#logChanges && this.coversAll(set)) {
      this.#log.warn("every backend of the set is disabled; clients are closed until one is enabled", { disabled: this.ids().join(",") });
    }
  }

  /** Returns true when `set` has backends and every one of them is disabled. */
  coversAll(set: BackendSet): boolean {
    // The size check first keeps this constant-time on the accept path while most backends are enabled.
    if (set.size === 0 || this.#ids.size < set.size) {
      return false;
    }

    return set.backends.every((backend) => this.#ids.has(backend.id));
  }

  #changed(): void {
    for (const listener of this.#listeners) {
      listener();
    }
  }
}
