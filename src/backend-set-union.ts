import type { Backend } from "./backend.ts";
import { BackendSet, compareIds } from "./backend-set.ts";
import { type Logger, silentLogger } from "./logger.ts";
import type { PublishBackendSet } from "./providers/provider.ts";
import type { ProviderHealth } from "./providers/provider-health.ts";

/** Two providers that publish the same backend id with different targets. */
export interface BackendIdConflict {
  id: string;
  /** The entry in use: the provider registered first. */
  kept: { provider: string; target: string };
  /** The entry left out of the running set. */
  ignored: { provider: string; target: string };
}

/** One provider's slot in the union. */
export interface ProviderSlot {
  name: string;
  /** The provider's latest set, or the seed saved by an earlier run until it publishes. */
  set: BackendSet;
  /** False while the slot still contains a seed (or nothing) because the provider has not published yet. */
  published: boolean;
  /** Fetch results of a provider that reads its set from elsewhere, for status and /metrics. */
  health?: ProviderHealth;
}

/**
 * Called with each new effective union; `provider` names the provider whose publish caused it.
 * `firstSet` is true when that publish was the provider's first and not held back by `batch`.
 */
export type ApplyUnion = (set: BackendSet, provider: string, firstSet: boolean) => void;

/**
 * The running backend set: the union of every provider's latest set, keyed by backend id.
 *
 * Providers are kept in registration order. When two providers publish the same id with
 * different targets, the provider registered first wins. The other entry is left out,
 * logged once as a warning naming both providers, and listed in `conflicts`. The same id
 * with the same target from two providers is no conflict, and counts as the first one's.
 *
 * Each publish recomputes the union and calls `apply` only when the union differs from
 * the one applied before, so a provider that republishes an unchanged set, or a change
 * hidden behind another provider's entry, costs nothing downstream.
 */
export class BackendSetUnion {
  readonly #slots: ProviderSlot[] = [];
  readonly #apply: ApplyUnion;
  readonly #log: Logger;
  readonly #listeners: ((set: BackendSet) => void)[] = [];
  #set = BackendSet.EMPTY;
  #sources = new Map<string, string>();
  #conflicts: BackendIdConflict[] = [];
  #holding = false;

  constructor(apply: ApplyUnion, logger: Logger = silentLogger) {
    this.#apply = apply;
    this.#log = logger.with({ component: "providers" });
  }

  /** The union applied last. */
  get set(): BackendSet {
    return this.#set;
  }

  /** Current id conflicts, in id order. */
  get conflicts(): readonly BackendIdConflict[] {
    return this.#conflicts;
  }

  /** Provider slots in registration order. */
  get slots(): readonly ProviderSlot[] {
    return this.#slots;
  }

  /** Returns the name of the provider whose entry for `id` is in use, if any. */
  providerOf(id: string): string | undefined {
    return this.#sources.get(id);
  }

  /**
   * Returns the name of the first provider registered before `name` that publishes `id`, with
   * any target. Returns undefined when none does, so that the entry of `name` for `id`, if it
   * has one, is the one in use. It reads the providers' latest sets, so it is current inside
   * `batch` too.
   */
  outrankingProvider(name: string, id: string): string | undefined {
    for (const slot of this.#slots) {
      if (slot.name === name) {
        return undefined;
      }
      if (slot.set.get(id) !== undefined) {
        return slot.name;
      }
    }

    return undefined;
  }

  /**
   * Adds a provider slot at the end of the order and returns the function it publishes with.
   * `health` is the provider's ProviderHealth, which status and /metrics read from the slot.
   *
   * @throws {Error} when a provider with the same name is already registered.
   */
  register(name: string, health?: ProviderHealth): PublishBackendSet {
    if (this.#slot(name) !== undefined) {
      throw new Error(`provider "${name}" is registered twice; provider names must be unique`);
    }

    const slot: ProviderSlot = { name, set: BackendSet.EMPTY, published: false, health };
    this.#slots.push(slot);

    return (set) => {
      const firstSet = !slot.published;
      slot.set = set;
      slot.published = true;
      this.#recompute(name, firstSet);
    };
  }

  /**
   * Fills the slots of registered providers that have not published yet with sets saved
   * by an earlier run. A seed serves until its provider publishes for the first time.
   * Returns the names in `saved` whose sets are not used: `unknown` match no registered
   * provider, and `superseded` belong to providers that already published a different set.
   */
  seed(saved: ReadonlyMap<string, BackendSet>): { unknown: string[]; superseded: string[] } {
    const unknown: string[] = [];
    const superseded: string[] = [];
    for (const [name, set] of saved) {
      const slot = this.#slot(name);
      if (slot === undefined) {
        unknown.push(name);
      } else if (slot.published) {
        if (!slot.set.equals(set)) {
          superseded.push(name);
        }
      } else {
        slot.set = set;
      }
    }
    this.#recompute("saved state");

    return { unknown, superseded };
  }

  /**
   * Runs `start` with recomputing held back, then applies the union once, so that the
   * providers publishing while they start cause one change instead of one each. The change
   * names the providers that hold backends then, or `cause` when none does.
   */
  async batch(cause: string, start: () => Promise<void>): Promise<void> {
    this.#holding = true;
    try {
      await start();
    } finally {
      this.#holding = false;
      const contributing = this.#slots.filter((slot) => slot.set.size > 0).map((slot) => slot.name);
      this.#recompute(contributing.length > 0 ? contributing.join(",") : cause);
    }
  }

  /** Calls `listener` after each effective change of the union, once it has been applied. */
  onChange(listener: (set: BackendSet) => void): void {
    this.#listeners.push(listener);
  }

  #slot(name: string): ProviderSlot | undefined {
    return this.#slots.find((slot) => slot.name === name);
  }

  #recompute(cause: string, firstSet = false): void {
    if (this.#holding) {
      return;
    }

    const chosen = new Map<string, { backend: Backend; provider: string }>();
    const conflicts: BackendIdConflict[] = [];
    for (const slot of this.#slots) {
      for (const backend of slot.set.backends) {
        const first = chosen.get(backend.id);
        if (first === undefined) {
          chosen.set(backend.id, { backend, provider: slot.name });
        } else if (first.backend.target !== backend.target) {
          conflicts.push({
            id: backend.id,
            kept: { provider: first.provider, target: first.backend.target },
            ignored: { provider: slot.name, target: backend.target },
          });
        }
      }
    }

    this.#reportNewConflicts(conflicts);
    this.#conflicts = conflicts.sort((a, b) => compareIds(a.id, b.id));
    this.#sources = new Map([...chosen].map(([id, entry]) => [id, entry.provider]));

    const union = new BackendSet([...chosen.values()].map((entry) => entry.backend));
    if (union.equals(this.#set)) {
      return;
    }

    this.#set = union;
    this.#apply(union, cause, firstSet);
    for (const listener of this.#listeners) {
      listener(union);
    }
  }

  /** Warns once about each conflict that was not there before the last recompute. */
  #reportNewConflicts(conflicts: readonly BackendIdConflict[]): void {
    const key = (conflict: BackendIdConflict): string =>
      [conflict.id, conflict.kept.provider, conflict.kept.target, conflict.ignored.provider, conflict.ignored.target].join("\0");
    const known = new Set(this.#conflicts.map(key));
    for (const conflict of conflicts) {
      if (known.has(key(conflict))) {
        continue;
      }
      this.#log.warn("backend id conflict: two providers publish the id with different targets; keeping the target of the provider that takes precedence", {
        backend: conflict.id,
        provider: conflict.kept.provider,
        target: conflict.kept.target,
        ignoredProvider: conflict.ignored.provider,
        ignoredTarget: conflict.ignored.target,
      });
    }
  }
}
