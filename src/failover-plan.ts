import type { Backend } from "./backend.ts";
import type { BackendSelector } from "./backend-selector.ts";

/** Checks a failover plan applies to each candidate backend. */
export interface FailoverChecks {
  /** True when the backend is healthy; unhealthy backends are tried only when no healthy one is left. */
  isHealthy(backend: Backend): boolean;
  /**
   * True while a failed dial's back-off runs, or its trial dial. Unhealthy backends that are
   * cooling down are not tried at all. Absent: none is.
   */
  isCoolingDown?(backend: Backend): boolean;
  /**
   * Reserves one more connection to the backend under its connection cap; false when it is
   * at its cap. The plan checks it last, so every backend it hands out has a reservation.
   */
  reserve(backend: Backend): boolean;
}

/**
 * The order in which one client connection tries backends.
 *
 * The first pick advances the shared rotation; later picks follow the last backend tried
 * without moving the rotation. The selector sets the order: the set's order (round-robin),
 * or the least loaded first, ties in the set's order (leastconn). Healthy backends come first.
 * When none is left (every backend is unhealthy, or every healthy one failed), the
 * unhealthy ones are tried too, in the same order, so probes that fail under load cannot
 * close every client. Those cooling down after a failed dial are not, because each would
 * most likely cost another connect timeout. A healthy backend at its connection cap still
 * counts as left: while one is, the unhealthy ones are not tried, and the client is closed
 * as over the cap rather than sent to a backend that is probably down.
 *
 * Each backend (id and target) is tried at most once, also when the set is replaced
 * between attempts, and no id is tried whose target already failed for this client: ids that
 * share a dead target would each cost it another connect timeout. The next pick is read from the set current at that moment. So a
 * backend added meanwhile is tried, one that left is not, and an id whose target changed
 * counts as a new backend.
 */
export class FailoverPlan {
  readonly #selector: BackendSelector;
  readonly #checks: FailoverChecks;
  readonly #maxAttempts: number;
  #first: Backend | undefined;
  // Built on the first failover only: most clients are served by their first backend.
  #tried: Set<string> | undefined;
  #failedTargets: Set<string> | undefined;
  /** True when the last healthy pick passed over a healthy backend at its cap. */
  #healthyAtCap = false;
  /** Dials that tinylb gave up itself (a target removed, a backend disabled), which use up no attempt of `maxAttempts`. */
  #givenUp = 0;

  /**
   * `maxAttempts` 0 means every backend once. `first` is the backend a FirstPicker already
   * handed out for this client, from the same selector; without it, call `first()` next.
   */
  constructor(selector: BackendSelector, checks: FailoverChecks, maxAttempts: number, first?: Backend) {
    this.#selector = selector;
    this.#checks = checks;
    this.#maxAttempts = maxAttempts;
    this.#first = first;
  }

  /** Number of backends handed out so far. */
  get attempts(): number {
    return this.#tried?.size ?? (this.#first === undefined ? 0 : 1);
  }

  /** Returns the first backend to dial, reserved under its cap, or undefined when no backend has room. */
  first(): Backend | undefined {
    this.#first = new FirstPicker(this.#checks).pick(this.#selector);

    return this.#first;
  }

  /**
   * Returns the backend to dial after `failed`, reserved under its cap, or undefined when the
   * attempts are used up or no untried backend with another target has room. `targetFailed`
   * is false when tinylb gave the dial up itself, so other ids with that target stay eligible,
   * and the dial uses up no attempt of `maxAttempts`.
   */
  next(failed: Backend, targetFailed = true): Backend | undefined {
    if (!targetFailed) {
      this.#givenUp++;
    }
    if (this.#maxAttempts > 0 && this.attempts - this.#givenUp >= this.#maxAttempts) {
      return undefined;
    }

    const tried = (this.#tried ??= new Set(this.#first === undefined ? [] : [attemptKey(this.#first)]));
    const failedTargets = (this.#failedTargets ??= new Set());
    if (targetFailed) {
      failedTargets.add(failed.target);
    }
    const untried = (candidate: Backend): boolean => !tried.has(attemptKey(candidate)) && !failedTargets.has(candidate.target);
    const backend = this.#pickHealthy(untried, failed.id) ?? (this.#healthyAtCap ? undefined : this.#pickUnhealthy(untried, failed.id));

    if (backend !== undefined) {
      tried.add(attemptKey(backend));
    }

    return backend;
  }

  /**
   * Picks the next healthy backend that `eligible` accepts and that has room: from the
   * rotation, or after `after` without moving it. Sets `#healthyAtCap` when an eligible
   * healthy backend was at its cap.
   */
  #pickHealthy(eligible: (candidate: Backend) => boolean, after?: string): Backend | undefined {
    const { isHealthy, reserve } = this.#checks;
    this.#healthyAtCap = false;
    const accept = (candidate: Backend): boolean => {
      if (!eligible(candidate) || !isHealthy(candidate)) {
        return false;
      }
      if (reserve(candidate)) {
        return true;
      }
      this.#healthyAtCap = true;

      return false;
    };

    // Health is the test a selector can apply before it orders the backends.
    return this.#pick(accept, isHealthy, after);
  }

  /**
   * Picks the next backend that `eligible` accepts and that has room, whatever its health,
   * unless it is cooling down after a failed dial. A backend whose dial just failed or timed
   * out would most likely cost the client another connect timeout, and a black-holed one a
   * socket left in SYN_SENT. Its trial dial finds out when it is back.
   */
  #pickUnhealthy(eligible: (candidate: Backend) => boolean, after?: string): Backend | undefined {
    const { isCoolingDown, reserve } = this.#checks;
    const ready = isCoolingDown === undefined ? eligible : (candidate: Backend): boolean => eligible(candidate) && !isCoolingDown(candidate);

    return this.#pick((candidate) => ready(candidate) && reserve(candidate), ready, after);
  }

  /** Offers the backends to `accept` from the rotation, or after `after` without moving it. */
  #pick(accept: (candidate: Backend) => boolean, candidate: (candidate: Backend) => boolean, after?: string): Backend | undefined {
    return after === undefined ? this.#selector.next(accept, candidate) : this.#selector.following(after, accept, candidate);
  }
}

/**
 * The first pick of a failover order, as `FailoverPlan.first` makes it, built once and reused
 * for every client. Most clients are served by their first backend, and they allocate neither
 * a plan nor a closure. A plan is built, with `first`, only when that dial fails.
 */
export class FirstPicker {
  readonly #checks: FailoverChecks;
  /** True when the current pick passed over a healthy backend at its cap. */
  #healthyAtCap = false;
  readonly #acceptHealthy: (candidate: Backend) => boolean;
  /** True when the current pick passed over an unhealthy backend that is cooling down after a failed dial. */
  #passedOverCooling = false;
  readonly #notCooling: (candidate: Backend) => boolean;
  readonly #acceptNotCooling: (candidate: Backend) => boolean;

  constructor(checks: FailoverChecks) {
    this.#checks = checks;
    const isCoolingDown = checks.isCoolingDown;
    this.#notCooling = (candidate) => {
      if (isCoolingDown?.(candidate) !== true) {
        return true;
      }
      this.#passedOverCooling = true;

      return false;
    };
    this.#acceptNotCooling = (candidate) => this.#notCooling(candidate) && checks.reserve(candidate);
    this.#acceptHealthy = (candidate) => {
      if (!checks.isHealthy(candidate)) {
        return false;
      }
      if (checks.reserve(candidate)) {
        return true;
      }
      this.#healthyAtCap = true;

      return false;
    };
  }

  /**
   * Returns the next backend of `selector`'s rotation, reserved under its cap: a healthy one
   * first, an unhealthy one that is not cooling down after a failed dial only when no healthy
   * backend is left, and undefined when no backend has room or every one left is cooling down
   * (`coolingDown` then says which; see FailoverPlan).
   */
  pick(selector: BackendSelector): Backend | undefined {
    this.#healthyAtCap = false;
    this.#passedOverCooling = false;
    const healthy = selector.next(this.#acceptHealthy, this.#checks.isHealthy);
    if (healthy !== undefined || this.#healthyAtCap) {
      return healthy;
    }

    return selector.next(this.#acceptNotCooling, this.#notCooling);
  }

  /** True when the last pick handed out nothing because each backend left was cooling down, not because of a cap. */
  get coolingDown(): boolean {
    return this.#passedOverCooling && !this.#healthyAtCap;
  }
}

function attemptKey(backend: Backend): string {
  return `${backend.id}\u0000${backend.target}`;
}
