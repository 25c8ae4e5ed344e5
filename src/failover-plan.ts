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
  readonly #picker: BackendPicker;
  readonly #maxAttempts: number;
  #first: Backend | undefined;
  // Built on the first failover only: most clients are served by their first backend.
  #tried: Set<string> | undefined;
  #failedTargets: Set<string> | undefined;
  /** Dials that tinylb gave up itself (a target removed, a backend disabled), which use up no attempt of `maxAttempts`. */
  #givenUp = 0;

  /**
   * `maxAttempts` 0 means every backend once. `first` is the backend a BackendPicker already
   * handed out for this client, from the same selector; without it, call `first()` next.
   */
  constructor(selector: BackendSelector, checks: FailoverChecks, maxAttempts: number, first?: Backend) {
    this.#selector = selector;
    this.#picker = new BackendPicker(checks);
    this.#maxAttempts = maxAttempts;
    this.#first = first;
  }

  /** Number of backends handed out so far. */
  get attempts(): number {
    return this.#tried?.size ?? (this.#first === undefined ? 0 : 1);
  }

  /** Returns the first backend to dial, reserved under its cap, or undefined when no backend has room. */
  first(): Backend | undefined {
    this.#first = this.#picker.pick(this.#selector);

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
    const backend = this.#picker.pick(this.#selector, untried, failed.id);

    if (backend !== undefined) {
      tried.add(attemptKey(backend));
    }

    return backend;
  }
}

const anyBackend = (): boolean => true;

/**
 * One pick of a failover order: a healthy backend first, then, only when no healthy backend
 * is left, an unhealthy one that is not cooling down after a failed dial. A backend whose dial
 * just failed or timed out would most likely cost the client another connect timeout, and a
 * black-holed one a socket left in SYN_SENT. Its trial dial finds out when it is back.
 *
 * The connector builds one picker and makes every client's first pick with it, so most clients,
 * which their first backend serves, allocate neither a plan nor a closure. The closures are
 * built once and read the pick's arguments from fields; picks never nest, since the checks
 * they call do not pick.
 */
export class BackendPicker {
  readonly #checks: FailoverChecks;
  /** True when the current pick passed over a backend at its cap, healthy or not. */
  #passedOverAtCap = false;
  /** True when the current pick passed over an unhealthy backend that is cooling down after a failed dial. */
  #passedOverCooling = false;
  /** The current pick's test of which backends it may hand out. */
  #eligible: (candidate: Backend) => boolean = anyBackend;
  readonly #healthyCandidate: (candidate: Backend) => boolean;
  readonly #acceptHealthy: (candidate: Backend) => boolean;
  readonly #readyCandidate: (candidate: Backend) => boolean;
  readonly #acceptReady: (candidate: Backend) => boolean;

  constructor(checks: FailoverChecks) {
    this.#checks = checks;
    const { isHealthy, isCoolingDown, reserve } = checks;
    // Health is the test a selector can apply before it orders the backends.
    this.#healthyCandidate = isHealthy;
    this.#acceptHealthy = (candidate) => {
      if (!this.#eligible(candidate) || !isHealthy(candidate)) {
        return false;
      }
      if (reserve(candidate)) {
        return true;
      }
      this.#passedOverAtCap = true;

      return false;
    };
    this.#readyCandidate = (candidate) => {
      if (!this.#eligible(candidate)) {
        return false;
      }
      if (isCoolingDown?.(candidate) !== true) {
        return true;
      }
      this.#passedOverCooling = true;

      return false;
    };
    this.#acceptReady = (candidate) => {
      if (!this.#readyCandidate(candidate)) {
        return false;
      }
      if (reserve(candidate)) {
        return true;
      }
      this.#passedOverAtCap = true;

      return false;
    };
  }

  /**
   * Returns the next backend that `eligible` accepts, reserved under its cap: from the
   * rotation, or after the backend `after` without moving it. Returns undefined when no
   * backend has room or every one left is cooling down, and `coolingDown` is true in the latter case.
   */
  pick(selector: BackendSelector, eligible: (candidate: Backend) => boolean = anyBackend, after?: string): Backend | undefined {
    this.#passedOverAtCap = false;
    this.#passedOverCooling = false;
    this.#eligible = eligible;
    const healthy = pickFrom(selector, this.#acceptHealthy, this.#healthyCandidate, after);
    if (healthy !== undefined || this.#passedOverAtCap) {
      return healthy;
    }

    return pickFrom(selector, this.#acceptReady, this.#readyCandidate, after);
  }

  /** True when the last pick handed out nothing because each backend left was cooling down, none of them because of a cap. */
  get coolingDown(): boolean {
    return this.#passedOverCooling && !this.#passedOverAtCap;
  }
}

/** Offers the backends to `accept` from the rotation, or after `after` without moving it. */
function pickFrom(selector: BackendSelector, accept: (candidate: Backend) => boolean, candidate: (candidate: Backend) => boolean, after: string | undefined): Backend | undefined {
  return after === undefined ? selector.next(accept, candidate) : selector.following(after, accept, candidate);
}

function attemptKey(backend: Backend): string {
  return `${backend.id}\u0000${backend.target}`;
}
