import type { Backend } from "./backend.ts";
import { type HealthCondition, type HealthState, inRotation } from "./backend-health.ts";
import { BackendSet } from "./backend-set.ts";
import { HealthChecker, type HealthCheckSettings, type HealthFlipListener, TRIAL_MARGIN_MS } from "./health-checker.ts";
import type { DisabledIds } from "./round-robin-selector.ts";
import { systemClock } from "./clock.ts";
import type { DialResult, HealthSnapshot } from "./worker-messages.ts";

/**
 * A relay worker's copy of the main thread's health state, used by the worker's Server in
 * place of a checker of its own, so that every thread's rotation skips the same backends.
 *
 * The main thread runs the probes and the dial back-off. Through `report`, the worker
 * sends it every failed dial and each successful dial to a backend that is not healthy.
 * The main thread records them in its checker and sends a new snapshot on each change of
 * condition.
 * A backend the main thread has not reported yet counts as healthy, as a backend of the
 * first set does in the main thread's own checker. Each set command carries a snapshot taken
 * after the main thread's checker tracked that set, so a backend that joins pending is never
 * handed out between the set and the next snapshot.
 *
 * NOTE: a failed dial reaches the workers' rotations a message round trip later, plus up to
 * 50 ms while the main thread batches changes. Until then a worker still hands the backend
 * out, and its client fails over as usual.
 */
export class WorkerHealth extends HealthChecker {
  readonly #report: (result: DialResult) => void;
  /** Backends that are not healthy, by id, as of the last snapshot. */
  #conditions = new Map<string, WorkerEntry>();
  #degraded = false;
  #set = BackendSet.EMPTY;
  readonly #flipListeners: HealthFlipListener[] = [];

  constructor(report: (result: DialResult) => void) {
    super();
    this.#report = report;
  }

  /**
   * Replaces the health state with the main thread's snapshot and calls the flip listeners
   * (the Server's `onUnhealthy` policy) for each backend of the set whose health flipped.
   */
  apply(snapshot: HealthSnapshot): void {
    const before = this.#conditions;
    const now = systemClock.now();
    this.#conditions = new Map(
      snapshot.backends.map((entry) => {
        // A trial in flight goes on while the failure streak does, also when a dial started
        // before the trial failed and began a new back-off.
        const previous = before.get(entry.id);
        const trialUntil = entry.failing && previous?.target === entry.target ? previous.trialUntil : undefined;

        return [entry.id, { target: entry.target, condition: entry.condition, cause: entry.cause, failing: entry.failing, backoffUntil: now + entry.backoffLeftMs, trialUntil }];
      }),
    );
    this.#degraded = snapshot.degraded;

    for (const backend of this.#set.backends) {
      const wasHealthy = conditionIn(before, backend) === "healthy";
      const healthy = conditionIn(this.#conditions, backend) === "healthy";
      if (wasHealthy === healthy) {
        continue;
      }
      const cause = this.#conditions.get(backend.id)?.cause ?? "";
      for (const listener of this.#flipListeners) {
        listener(backend, healthy, cause);
      }
    }
  }

  override get degraded(): boolean {
    return this.#degraded;
  }

  override onFlip(listener: HealthFlipListener): void {
    this.#flipListeners.push(listener);
  }

  override update(set: BackendSet): void {
    this.#set = set;
  }

  /** Does nothing: probe and back-off settings apply in the main thread. */
  override configure(_settings: HealthCheckSettings): void {}

  /** Does nothing: the main thread's snapshot carries `degraded`, which leaves disabled backends out there. */
  override setDisabled(_disabled: DisabledIds): void {}

  override isHealthy(backend: Backend): boolean {
    if (this.#conditions.size === 0) {
      return true;
    }
    const entry = entryOf(this.#conditions, backend);

    return entry === undefined || (inRotation(entry.condition) && !trialRunning(entry, systemClock.now()));
  }

  override isCoolingDown(backend: Backend): boolean {
    const entry = entryOf(this.#conditions, backend);
    if (entry === undefined || !entry.failing) {
      return false;
    }
    const now = systemClock.now();

    return now < entry.backoffUntil || trialRunning(entry, now);
  }

  /** Starts this thread's trial dial of a failing backend whose back-off ended; each thread runs its own. */
  override dialStarted(backend: Backend, connectTimeoutMs: number): boolean {
    if (this.#conditions.size === 0) {
      return false;
    }
    const entry = entryOf(this.#conditions, backend);
    const now = systemClock.now();
    if (entry === undefined || !canStartTrial(entry, now)) {
      return false;
    }

    // The trial stands for the target, so other ids with it wait for its result too.
    for (const sharing of this.#sharingTarget(backend.target)) {
      if (canStartTrial(sharing, now)) {
        sharing.trialUntil = now + connectTimeoutMs + TRIAL_MARGIN_MS;
      }
    }

    return true;
  }

  override dialGivenUp(backend: Backend): void {
    this.#endTrial(backend);
  }

  override isReportedHealthy(backend: Backend): boolean {
    return conditionIn(this.#conditions, backend) === "healthy";
  }

  /**
   * Reports the dial. A failed trial ends, and the backend stays out of this thread's rotation
   * for the shortest back-off until the main thread's snapshot brings the real one.
   */
  override dialFailed(backend: Backend, reason: string, trial = false): void {
    if (trial) {
      const until = systemClock.now() + MIN_BACKOFF_GUESS_MS;
      for (const entry of this.#sharingTarget(backend.target)) {
        entry.trialUntil = undefined;
        entry.backoffUntil = Math.max(entry.backoffUntil, until);
      }
    }
    this.#report({ type: "dial-failed", id: backend.id, target: backend.target, reason });
  }

  /** Reports the dial only when the backend is not healthy, so a healthy backend costs no message per connection. */
  override dialSucceeded(backend: Backend): void {
    if (conditionIn(this.#conditions, backend) !== "healthy") {
      this.#endTrial(backend);
      this.#report({ type: "dial-succeeded", id: backend.id, target: backend.target });
    }
  }

  #endTrial(backend: Backend): void {
    for (const entry of this.#sharingTarget(backend.target)) {
      entry.trialUntil = undefined;
    }
  }

  /** Returns the snapshot entries with `target`; the snapshot lists only backends that are not healthy, so it is short. */
  #sharingTarget(target: string): WorkerEntry[] {
    return [...this.#conditions.values()].filter((entry) => entry.target === target);
  }

  /** Returns nothing: status pages read the main thread's checker. */
  override states(): HealthState[] {
    return [];
  }

  override state(_id: string): HealthState | undefined {
    return undefined;
  }

  override stop(): void {}
}

/** A backend of the last snapshot, with this thread's trial dial. Times are on this thread's clock. */
interface WorkerEntry {
  target: string;
  condition: HealthCondition;
  cause: string;
  failing: boolean;
  backoffUntil: number;
  trialUntil: number | undefined;
}

/** Milliseconds a failed trial keeps its backend out of this thread's rotation before a snapshot brings the back-off: the default `dialBackoff`. */
const MIN_BACKOFF_GUESS_MS = 1000;

/** Returns the snapshot entry of `backend`; one reported for the id's previous target does not apply to the new one. */
function entryOf(conditions: ReadonlyMap<string, WorkerEntry>, backend: Backend): WorkerEntry | undefined {
  const entry = conditions.get(backend.id);

  return entry === undefined || entry.target !== backend.target ? undefined : entry;
}

function conditionIn(conditions: ReadonlyMap<string, WorkerEntry>, backend: Backend): HealthCondition {
  return entryOf(conditions, backend)?.condition ?? "healthy";
}

/** True when `entry` has a failure streak, its back-off ended and no trial runs. */
function canStartTrial(entry: WorkerEntry, now: number): boolean {
  return entry.failing && now >= entry.backoffUntil && !trialRunning(entry, now);
}

function trialRunning(entry: WorkerEntry, now: number): boolean {
  return entry.trialUntil !== undefined && now < entry.trialUntil;
}
