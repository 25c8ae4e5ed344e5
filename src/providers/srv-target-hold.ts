import type { Backend } from "../backend.ts";
import type { Clock } from "../clock.ts";
import type { Logger } from "../logger.ts";
import { NewCauses } from "./failure-streak.ts";

/**
 * Default of `holdMs`: how long an SRV target that stops resolving keeps its last addresses.
 * It is the `hold nx` period of the example in HAProxy 2.6's configuration manual (section
 * 5.3.2, "The resolvers section").
 */
export const SRV_TARGET_HOLD_MS = 30_000;

/** State of one SRV target (`name:port`) across lookups. */
interface TargetState {
  /** Backends of the last lookup in which the target resolved; empty if it never did. */
  backends: Backend[];
  /** Clock time of the first lookup of the current streak in which the target did not resolve. */
  unresolvedSinceMs: number | undefined;
  /** Lookups of the current streak in which the target did not resolve. */
  failedLookups: number;
  /** Causes of the current streak that were logged. */
  readonly causes: NewCauses;
}

/**
 * The last addresses of each target of an SRV answer, kept while a target's name stops
 * resolving (no such name, no A or AAAA record, or no valid address), as HAProxy keeps a
 * server's last address for its `hold nx` period. A target's kept backends expire `holdMs`
 * after the first lookup in which it did not resolve. A failed query of a target is not
 * handled here: it fails the whole lookup, which keeps the whole last answer.
 *
 * Warnings name the target and are logged once per cause of a streak, and the target
 * resolving again is logged at info.
 */
export class SrvTargetHold {
  readonly #targets = new Map<string, TargetState>();

  constructor(
    private readonly log: Logger,
    private readonly clock: Clock,
    private readonly holdMs = SRV_TARGET_HOLD_MS,
  ) {}

  /** Records the backends of a target that resolved and returns them. */
  resolved(target: string, backends: Backend[]): Backend[] {
    const state = this.#targets.get(target);
    if (state !== undefined && state.failedLookups > 0) {
      this.log.info("SRV target resolves again", { target, failedLookups: state.failedLookups });
    }
    this.#targets.set(target, { backends, unresolvedSinceMs: undefined, failedLookups: 0, causes: new NewCauses() });

    return backends;
  }

  /**
   * Records a lookup in which `target` had no valid address, for the reason in `cause`.
   * Returns its last backends until the hold expires, and an empty list after that or when
   * the target never resolved.
   */
  unresolved(target: string, cause: string): Backend[] {
    let state = this.#targets.get(target);
    if (state === undefined) {
      state = { backends: [], unresolvedSinceMs: undefined, failedLookups: 0, causes: new NewCauses() };
      this.#targets.set(target, state);
    }
    const now = this.clock.now();
    state.unresolvedSinceMs ??= now;
    state.failedLookups++;
    const fields = { target, err: cause, ...(state.failedLookups === 1 ? {} : { failedLookups: state.failedLookups }) };

    if (state.backends.length === 0) {
      if (state.causes.add(cause)) {
        this.log.warn("SRV target does not resolve; it has no backends", fields);
      }

      return [];
    }

    const heldMs = now - state.unresolvedSinceMs;
    if (heldMs >= this.holdMs) {
      this.log.warn("SRV target still does not resolve after the hold; removing its backends", { ...fields, failedLookups: state.failedLookups, holdMs: this.holdMs });
      // The target stays known with no backends, so later lookups warn only for a new cause.
      state.backends = [];
      state.causes.add(cause);

      return [];
    }
    if (state.causes.add(cause)) {
      const keptTargets = state.backends.map((backend) => backend.target).join(",");
      this.log.warn("SRV target does not resolve; keeping its last addresses", { ...fields, keptTargets, holdMs: this.holdMs });
    }

    return state.backends;
  }

  /** Forgets the targets that the SRV answer no longer lists. */
  retain(targets: Set<string>): void {
    for (const target of this.#targets.keys()) {
      if (!targets.has(target)) {
        this.#targets.delete(target);
      }
    }
  }
}
