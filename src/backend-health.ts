import type { Backend } from "./backend.ts";

/** Passive health settings: how long a backend is skipped after dial failures. */
export interface BackoffSettings {
  /** Milliseconds skipped after the first failure of a streak; each next failure doubles it. */
  backoffMs: number;
  /** Upper bound of the doubled back-off, in milliseconds. */
  maxBackoffMs: number;
}

/**
 * Health of a backend in one word:
 * - `healthy`: the rotation hands it out;
 * - `unhealthy`: the rotation skips it, because a dial back-off runs or probes failed;
 * - `retrying`: a backend whose dial back-off ended. The rotation hands it out again, but it
 *   counts as healthy only once a dial succeeds or, when probed, a probe passes;
 * - `pending`: a probed backend that joined a running set, or changed target, and waits for
 *   its first probe result. The rotation skips it, as Envoy's `ignore_new_hosts_until_first_hc` does.
 */
export type HealthCondition = "healthy" | "retrying" | "pending" | "unhealthy";

/** Returns true when the rotation hands out a backend in `condition`: healthy or retrying. */
export function inRotation(condition: HealthCondition): boolean {
  return condition === "healthy" || condition === "retrying";
}

/** Health of one backend as status pages show it. Times are on the health checker's clock. */
export interface HealthState {
  id: string;
  target: string;
  condition: HealthCondition;
  /** True only in the `healthy` condition. */
  healthy: boolean;
  /** Cause of the last change of condition, or of the probe falling while unhealthy already; "" before the first one. */
  cause: string;
  /** Dial failures in the current streak; 0 after a successful dial or probe. */
  dialFailureStreak: number;
  /** Times the backend turned unhealthy since it joined the set with this target. */
  timesUnhealthy: number;
  /** Clock time when the dial back-off ends, or undefined when none is running. */
  backoffUntil: number | undefined;
  /** Active probe counters, or undefined when the backend has no probe. */
  probe:
    | {
        description: string;
        /** False once `fall` probes in a row failed, true again after `rise` passed. */
        up: boolean;
        /** Consecutive passes, reset by a failure. */
        passes: number;
        /** Consecutive failures, reset by a pass. */
        failures: number;
        /** Reason of the last failed probe. */
        lastError: string | undefined;
        /** Failed probes since the backend joined the set with this target. */
        failedTotal: number;
      }
    | undefined;
}

/**
 * The health of one backend: a passive dial back-off and, when probed, the rise and fall
 * counters. Transitions are pure; the health checker owns timers and logging.
 *
 * A backend starts healthy, so a balancer that just started serves every backend until
 * dials or probes prove otherwise. One that joins a running set may start pending instead
 * (see `awaitingFirstProbe`).
 */
export class BackendHealth {
  readonly backend: Backend;
  cause = "";
  dialFailureStreak = 0;
  /** Set by the first failed dial of a streak and kept after the back-off ends, until a dial succeeds or a probe passes. */
  backoffUntil: number | undefined;
  /** End of the trial dial handed out after the back-off ended (see `startTrial`). */
  #trialUntil: number | undefined;
  #backoffMs = 0;
  probeUp = true;
  probePasses = 0;
  probeFailures = 0;
  /** Failed probes in all, never reset while the backend keeps its target. */
  probeFailuresTotal = 0;
  lastProbeError: string | undefined;
  /** Number of times the health checker reported this backend unhealthy. */
  timesUnhealthy = 0;
  /**
   * True until the first probe result of a backend that joined a running set. A pass then
   * makes it healthy at once; a failure makes it unhealthy until `rise` probes pass.
   */
  awaitingFirstProbe: boolean;

  constructor(backend: Backend, awaitingFirstProbe = false) {
    this.backend = backend;
    this.awaitingFirstProbe = awaitingFirstProbe;
  }

  /**
   * Returns the condition at clock time `now`. After a dial back-off the backend is retrying
   * until a dial succeeds or a probe passes, so a dead backend whose probes have not reached
   * `fall` yet does not turn healthy each time its back-off ends.
   */
  condition(now: number): HealthCondition {
    if (!this.probeUp || this.inBackoff(now)) {
      return "unhealthy";
    }
    if (this.awaitingFirstProbe) {
      return "pending";
    }

    return this.dialFailureStreak > 0 ? "retrying" : "healthy";
  }

  inBackoff(now: number): boolean {
    return this.backoffUntil !== undefined && now < this.backoffUntil;
  }

  /** True while the back-off is running or its trial dial is in flight, so other clients pass the backend over. */
  coolingDown(now: number): boolean {
    return this.inBackoff(now) || this.trialRunning(now);
  }

  /** True while a trial dial handed out after the back-off is in flight, and at most until the end `startTrial` set. */
  trialRunning(now: number): boolean {
    return this.#trialUntil !== undefined && now < this.#trialUntil;
  }

  /**
   * Records that a client dials the backend after its back-off ended, while it still has a
   * failure streak, and returns true when this dial is now the trial. Only the trial's own
   * result ends it early: a dial started before the back-off may still fail meanwhile. Until the trial settles,
   * or `trialMs` passed (a safety net for a settle that never comes), the rotation passes the
   * backend over, so a black-holed target costs one connect timeout, not one per client.
   */
  startTrial(now: number, trialMs: number): boolean {
    if (this.backoffUntil === undefined || this.coolingDown(now)) {
      return false;
    }

    this.#trialUntil = now + trialMs;

    return true;
  }

  /** Ends the trial dial, which tinylb gave up itself (a set change, a disable, no file descriptor), without a verdict. */
  endTrial(): void {
    this.#trialUntil = undefined;
  }

  /**
   * Records a failed dial and returns the new back-off in milliseconds, or undefined when a
   * back-off is already running. Dials that fail during a back-off were started before it
   * (or in degraded mode), so they do not double it again.
   */
  dialFailed(now: number, settings: BackoffSettings, endsTrial = false): number | undefined {
    if (endsTrial) {
      this.#trialUntil = undefined;
    }
    if (this.inBackoff(now)) {
      return undefined;
    }

    this.dialFailureStreak++;
    this.#backoffMs = Math.min(settings.backoffMs * 2 ** (this.dialFailureStreak - 1), settings.maxBackoffMs);
    this.backoffUntil = now + this.#backoffMs;

    return this.#backoffMs;
  }

  /** Records a successful dial: the streak and any back-off end. */
  dialSucceeded(): void {
    this.dialFailureStreak = 0;
    this.backoffUntil = undefined;
    this.#trialUntil = undefined;
  }

  /** Records a passed probe. A pass also ends a dial back-off, because the backend accepts connections again. */
  probePassed(rise: number): void {
    this.awaitingFirstProbe = false;
    this.probePasses++;
    this.probeFailures = 0;
    if (!this.probeUp && this.probePasses >= rise) {
      this.probeUp = true;
    }
    this.dialSucceeded();
  }

  /** Records a failed probe with its reason. */
  probeFailed(fall: number, reason: string): void {
    this.probeFailures++;
    this.probeFailuresTotal++;
    this.probePasses = 0;
    this.lastProbeError = reason;
    if (this.probeUp && (this.probeFailures >= fall || this.awaitingFirstProbe)) {
      this.probeUp = false;
    }
    this.awaitingFirstProbe = false;
  }

  /** Returns the state a status page shows. */
  snapshot(now: number, probeDescription: string | undefined): HealthState {
    const condition = this.condition(now);

    return {
      id: this.backend.id,
      target: this.backend.target,
      condition,
      healthy: condition === "healthy",
      cause: this.cause,
      dialFailureStreak: this.dialFailureStreak,
      timesUnhealthy: this.timesUnhealthy,
      backoffUntil: this.inBackoff(now) ? this.backoffUntil : undefined,
      probe:
        probeDescription === undefined
          ? undefined
          : {
              description: probeDescription,
              up: this.probeUp,
              passes: this.probePasses,
              failures: this.probeFailures,
              lastError: this.lastProbeError,
              failedTotal: this.probeFailuresTotal,
            },
    };
  }
}
