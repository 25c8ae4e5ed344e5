import { type Backend, BackendError } from "./backend.ts";

/**
 * An immutable, ordered collection of backends, as a provider publishes it.
 *
 * Backends are sorted by id (plain code-unit order) so that the rotation does not
 * depend on the order a source lists them. Ids are unique; two ids may share a target.
 */
export class BackendSet {
  /** The empty set. */
  static readonly EMPTY = new BackendSet([]);

  readonly #backends: readonly Backend[];
  readonly #byId: ReadonlyMap<string, Backend>;
  readonly #targets: ReadonlySet<string>;

  /**
   * Creates a set from backends in any order.
   *
   * @throws {BackendError} when two backends share an id.
   */
  constructor(backends: Iterable<Backend>) {
    const byId = new Map<string, Backend>();
    for (const backend of backends) {
      const existing = byId.get(backend.id);
      if (existing !== undefined) {
        throw new BackendError(
          `duplicate backend id "${backend.id}": targets ${existing.target} and ${backend.target}; ids must be unique`,
        );
      }
      byId.set(backend.id, backend);
    }

    this.#backends = Object.freeze([...byId.values()].sort((a, b) => compareIds(a.id, b.id)));
    this.#byId = byId;
    this.#targets = new Set(this.#backends.map((backend) => backend.target));
  }

  /** Number of backends. */
  get size(): number {
    return this.#backends.length;
  }

  /** Backends in id order. */
  get backends(): readonly Backend[] {
    return this.#backends;
  }

  /** Distinct targets of the set. */
  get targets(): ReadonlySet<string> {
    return this.#targets;
  }

  /** Returns the backend with this id, if any. */
  get(id: string): Backend | undefined {
    return this.#byId.get(id);
  }

  /** Returns true when some backend of the set dials this target. */
  hasTarget(target: string): boolean {
    return this.#targets.has(target);
  }

  /** Returns true when both sets hold the same ids with the same targets. */
  equals(other: BackendSet): boolean {
    if (other.size !== this.size) {
      return false;
    }

    return this.#backends.every((backend, index) => {
      const peer = other.#backends[index];

      return peer !== undefined && peer.id === backend.id && peer.target === backend.target;
    });
  }

  /** Formats the set as `id=target` pairs for logs. */
  describe(): string {
    return this.#backends.map((backend) => `${backend.id}=${backend.target}`).join(",");
  }
}

/** Compares ids in the order a set and the round-robin selector use. */
export function compareIds(a: string, b: string): number {
  if (a === b) {
    return 0;
  }

  return a < b ? -1 : 1;
}

/** The change from one backend set to the next. */
export interface BackendSetChange {
  added: Backend[];
  removed: Backend[];
  /** Backends whose id stayed but whose target changed, with the old target. */
  retargeted: { backend: Backend; oldTarget: string }[];
  /** Targets of the old set that the new set no longer dials. */
  removedTargets: string[];
}

/** Computes what changes between two sets. */
export function diffBackendSets(before: BackendSet, after: BackendSet): BackendSetChange {
  const change: BackendSetChange = { added: [], removed: [], retargeted: [], removedTargets: [] };

  for (const backend of after.backends) {
    const old = before.get(backend.id);
    if (old === undefined) {
      change.added.push(backend);
    } else if (old.target !== backend.target) {
      change.retargeted.push({ backend, oldTarget: old.target });
    }
  }
  for (const backend of before.backends) {
    if (after.get(backend.id) === undefined) {
      change.removed.push(backend);
    }
  }
  for (const target of before.targets) {
    if (!after.hasTarget(target)) {
      change.removedTargets.push(target);
    }
  }

  return change;
}
