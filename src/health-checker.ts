import { DescriptorShortage } from "./descriptor-shortage.ts";
import type { Backend } from "./backend.ts";
import { BackendHealth, type BackoffSettings, type HealthCondition, type HealthState, inRotation } from "./backend-health.ts";
import { BackendSet } from "./backend-set.ts";
import { type Clock, type ClockTimer, systemClock } from "./clock.ts";
import { formatDuration } from "./duration.ts";
import { LogBudget } from "./log-budget.ts";
import { type Logger, silentLogger } from "./logger.ts";
import { ProbeLoop } from "./probe-loop.ts";
import { describeProbe, type ProbeOverrides, type ProbeSettings, resolveProbeSettings } from "./probes/probe.ts";
import { PROXY_PROTOCOL_OFF, proxyProtocolOf, type ProxyProtocolSettings } from "./proxy-protocol.ts";
import { type DisabledIds, NONE_DISABLED } from "./round-robin-selector.ts";

/** Health settings that a config reload may change. */
export interface HealthCheckSettings {
  /** Active probe of every backend; no probes run when no kind is set. */
  probe?: ProbeOverrides;
  /** Per-backend probe settings by backend id, laid over `probe`. */
  probeOverrides?: ReadonlyMap<string, ProbeOverrides>;
  /**
   * Milliseconds a backend is skipped after its first dial failure; each next failure in
   * a row doubles it.
   * @default 1000
   */
  backoffMs?: number;
  /**
   * Upper bound of the dial back-off, in milliseconds.
   * @default 30000
   */
  maxBackoffMs?: number;
}

/** Options of a health checker. */
export interface HealthCheckerOptions extends HealthCheckSettings {
  /** @default the system clock */
  clock?: Clock;
  /** @default a logger that writes nothing */
  logger?: Logger;
}

/** Called when a backend's health flips, after the checker logged it. */
export type HealthFlipListener = (backend: Backend, healthy: boolean, cause: string) => void;

/** One tracked backend: its state, its probe settings and what drives them. */
interface Entry {
  health: BackendHealth;
  probe: ProbeSettings | undefined;
  /** Condition at the last evaluation, so that a cause is recorded once per change. */
  condition: HealthCondition;
  /** Health as last reported (true only in the `healthy` condition), so that only flips are logged. */
  reported: boolean;
  probeLoop: ProbeLoop | undefined;
  backoffTimer: ClockTimer | undefined;
}

/**
 * Health flip lines that all backends together write at info or warn level per
 * HEALTH_LOG_INTERVAL_MS, and the rest are debug lines. A control plane's few backends never reach
 * it, but a client that fails over thousands of dead backends flips each of them.
 */
const HEALTH_FLIP_LINES = 50;

/** Milliseconds a trial dial may take beyond the connect timeout before the rotation hands its backend out again. */
export const TRIAL_MARGIN_MS = 1000;
const HEALTH_LOG_INTERVAL_MS = 10_000;

/**
 * Decides which backends are fit for traffic, from dial results (passive) and from
 * probes (active), and logs each flip once with its cause.
 *
 * Without an active probe, the end of a dial back-off only makes a backend `retrying`: the
 * rotation hands it out again, but it is logged and reported healthy only once a dial to
 * it succeeds. A dead backend therefore stays unhealthy in logs and status while each
 * back-off ends and the retry fails, instead of flipping every back-off period.
 *
 * Each backend of the set gets one probe loop (see ProbeLoop), so probes of one backend
 * never overlap.
 *
 * A probed backend that joins a running set, or whose target changes, is pending: it gets no
 * clients until its first probe, which starts at once, passes. Backends of the first set
 * (at start-up, or after the set was empty) are not pending, so a start whose probes cannot
 * pass yet still serves.
 *
 * The balancer is degraded when the set has an enabled backend and every enabled backend
 * is unhealthy or pending. The server then tries them all anyway, so probes that time out under load
 * cannot take the whole set out of service. Disabled backends are left out because the
 * rotation never hands them out, but they are still probed, so their health stays visible.
 */
export class HealthChecker {
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #flipLines: LogBudget;
  #settings: HealthCheckSettings;
  #set = BackendSet.EMPTY;
  readonly #entries = new Map<string, Entry>();
  /** Entries by target, for targets that two or more ids share. Rebuilt on each set change. */
  #byTarget = new Map<string, Entry[]>();
  readonly #listeners: HealthFlipListener[] = [];
  readonly #conditionListeners: (() => void)[] = [];
  #disabled = NONE_DISABLED;
  #proxyProtocol: ProxyProtocolSettings = PROXY_PROTOCOL_OFF;
  #degraded = false;
  #stopped = false;
  /** Entries with a dial failure streak, so that `dialStarted` looks up nothing while there are none. */
  readonly #failing = new Set<Entry>();
  /** Detector of dials and probes that failed for lack of a file descriptor, which do not count against a backend's health. */
  readonly descriptorShortage: DescriptorShortage;

  constructor(options: HealthCheckerOptions = {}) {
    const { clock, logger, ...settings } = options;
    this.#clock = clock ?? systemClock;
    this.#log = (logger ?? silentLogger).with({ component: "health" });
    const spent = "more backends changed health than the log shows; the rest are debug lines until the interval ends, and tinylb status lists every backend's health";
    this.#flipLines = new LogBudget(this.#log, "warn", HEALTH_FLIP_LINES, HEALTH_LOG_INTERVAL_MS, spent, () => this.#clock.now());
    this.#settings = settings;
    this.descriptorShortage = new DescriptorShortage(this.#log);
  }

  /** True when the set has an enabled backend and every enabled one is unhealthy, so the server ignores health. */
  get degraded(): boolean {
    return this.#degraded;
  }

  /** Calls `listener` on every flip of a backend's health. */
  onFlip(listener: HealthFlipListener): void {
    this.#listeners.push(listener);
  }

  /**
   * Calls `listener` after every change of a backend's condition, flips and changes
   * between unhealthy and retrying alike, once `degraded` is up to date.
   */
  onConditionChange(listener: () => void): void {
    this.#conditionListeners.push(listener);
  }

  /**
   * Tracks a new backend set: new ids, and ids whose target changed, start with a fresh probe
   * loop, healthy or, when probed and the set was not empty, pending. Ids that left stop
   * probing. An id that was reported unhealthy and now has another target on which it starts
   * healthy gets an info line, so its log does not end on the old target's failure.
   */
  update(set: BackendSet): void {
    const joiningRunningSet = this.#set.size > 0;
    /** Ids whose target changed, with the old target and whether it was reported unhealthy. */
    const retargeted = new Map<string, { oldTarget: string; wasUnhealthy: boolean }>();
    for (const [id, entry] of this.#entries) {
      const next = set.get(id);
      if (next === undefined || next.target !== entry.health.backend.target) {
        this.#dispose(entry);
        this.#entries.delete(id);
        if (next !== undefined) {
          retargeted.set(id, { oldTarget: entry.health.backend.target, wasUnhealthy: !entry.reported });
        }
      }
    }
    for (const backend of set.backends) {
      if (!this.#entries.has(backend.id)) {
        this.#track(backend, joiningRunningSet, retargeted.get(backend.id)?.oldTarget);
      }
    }
    for (const [id, { oldTarget, wasUnhealthy }] of retargeted) {
      if (!wasUnhealthy) {
        continue;
      }
      const entry = this.#entries.get(id)!;
      if (entry.condition === "healthy") {
        this.#log.info("backend is healthy", { backend: id, target: entry.health.backend.target, cause: `its target changed from ${oldTarget}, so its health starts over` });
      }
    }
    this.#byTarget = sharedTargets(this.#entries.values());

    this.#set = set;
    this.#updateDegraded();
  }

  /**
   * Sets the ids that `degraded` leaves out, and updates it. The checker keeps `disabled`
   * and reads it again on every change of health, so call this after each change of it.
   */
  setDisabled(disabled: DisabledIds): void {
    this.#disabled = disabled;
    if (this.#updateDegraded()) {
      this.#announceConditionChange();
    }
  }

  /** Applies new probe and back-off settings; backends whose probe changed restart probing. */
  configure(settings: HealthCheckSettings): void {
    this.#settings = settings;
    for (const entry of this.#entries.values()) {
      const probe = this.#probeSettings(entry.health.backend);
      if (JSON.stringify(probe) === JSON.stringify(entry.probe)) {
        continue;
      }

      this.#stopProbing(entry);
      entry.probe = probe;
      entry.health.probePasses = 0;
      entry.health.probeFailures = 0;
      if (probe === undefined) {
        entry.health.probeUp = true;
        entry.health.awaitingFirstProbe = false;
        this.#evaluate(entry, "probe removed from the config");
      } else {
        this.#startProbing(entry);
      }
    }
  }

  /**
   * Sets which backends' probes start with a PROXY protocol header (see `ProbeSettings`).
   * Backends whose header changed restart probing.
   */
  setProxyProtocol(settings: ProxyProtocolSettings): void {
    this.#proxyProtocol = settings;
    this.configure(this.#settings);
  }

  /**
   * True when the rotation may hand `backend` out: it is healthy or retrying. Backends the
   * checker does not track count as healthy.
   */
  isHealthy(backend: Backend): boolean {
    const entry = this.#entryOf(backend);
    if (entry === undefined) {
      return true;
    }
    const health = entry.health;
    if (health.backoffUntil === undefined) {
      return inRotation(health.condition(0));
    }
    const now = this.#clock.now();

    // A retrying backend whose trial dial is in flight waits for that dial's result.
    return inRotation(health.condition(now)) && !health.trialRunning(now);
  }

  /**
   * True when a dial to `backend` failed and its back-off is running, or the trial dial after
   * it is in flight. When no healthy backend is left, the others are tried before these.
   */
  isCoolingDown(backend: Backend): boolean {
    const health = this.#entryOf(backend)?.health;

    return health?.backoffUntil !== undefined && health.coolingDown(this.#clock.now());
  }

  /**
   * Records that a client dials `backend`, and returns true when the dial is the trial: the
   * first dial after its back-off ended (see BackendHealth.startTrial), which lasts at most
   * `connectTimeoutMs` plus a second. Pass that to `dialFailed` or `dialGivenUp` when it settles.
   */
  dialStarted(backend: Backend, connectTimeoutMs: number): boolean {
    // Every connection comes here, and a backend without a failure streak needs no lookup.
    if (this.#failing.size === 0) {
      return false;
    }
    const entry = this.#entryOf(backend);
    const now = this.#clock.now();
    if (entry === undefined || !this.#failing.has(entry) || !entry.health.startTrial(now, connectTimeoutMs + TRIAL_MARGIN_MS)) {
      return false;
    }

    // The trial stands for the target, so other ids with it wait for its result too.
    for (const sharing of this.#sharingTarget(entry)) {
      if (sharing !== entry) {
        sharing.health.startTrial(now, connectTimeoutMs + TRIAL_MARGIN_MS);
      }
    }

    return true;
  }

  /** Records a trial dial that tinylb gave up itself, which ends the trial of its target without a verdict. */
  dialGivenUp(backend: Backend): void {
    const entry = this.#entryOf(backend);
    if (entry !== undefined) {
      for (const sharing of this.#sharingTarget(entry)) {
        sharing.health.endTrial();
      }
    }
  }

  /** Milliseconds left of the dial back-off of `id`, 0 when none runs, for the snapshots that relay workers follow. */
  backoffLeftMs(id: string): number {
    const until = this.#entries.get(id)?.health.backoffUntil;

    return until === undefined ? 0 : Math.max(0, until - this.#clock.now());
  }

  /**
   * True when `backend` is in the `healthy` condition, as status pages report it: not while
   * it is retrying after a back-off. Backends the checker does not track count as healthy.
   */
  isReportedHealthy(backend: Backend): boolean {
    const entry = this.#entryOf(backend);

    return entry === undefined || this.#conditionOf(entry) === "healthy";
  }

  /**
   * Records a failed dial; the backend is skipped for a back-off that doubles with each failure
   * in a row. Other ids with the same target get the same back-off, since a dial of theirs would
   * fail the same way and cost the next client another connect timeout. `trial` is true when
   * `dialStarted` returned true for this dial, which ends the trial.
   */
  dialFailed(backend: Backend, reason: string, trial = false): void {
    const entry = this.#entryOf(backend);
    if (entry === undefined) {
      return;
    }

    for (const sharing of this.#sharingTarget(entry)) {
      this.#backOff(sharing, reason, trial);
    }
  }

  #backOff(entry: Entry, reason: string, endsTrial: boolean): void {
    const backoffMs = entry.health.dialFailed(this.#clock.now(), this.#backoff(), endsTrial);
    if (backoffMs === undefined) {
      return;
    }

    this.#failing.add(entry);
    entry.backoffTimer?.cancel();
    entry.backoffTimer = this.#clock.setTimeout(() => {
      entry.backoffTimer = undefined;
      const ended = `dial back-off of ${formatDuration(backoffMs)} ended`;
      this.#evaluate(entry, entry.probe === undefined ? `${ended}; the next client retries it` : `${ended}; the next passed probe or client dial makes it healthy`);
      // A backend a probe keeps unhealthy stays so, and relay workers still follow the back-off.
      this.#announceConditionChange();
    }, backoffMs);
    this.#evaluate(entry, `${reason}; skipped for a back-off of ${formatDuration(backoffMs)}`);
    this.#announceConditionChange();
  }

  /** Records a successful dial, which ends the failure streak and back-off of the backend and of other ids with its target. */
  dialSucceeded(backend: Backend): void {
    const entry = this.#entryOf(backend);
    if (entry === undefined) {
      return;
    }

    // This runs for every connection, so it avoids #sharingTarget, which builds an array for a
    // target with one id, and skips the lookup while no two ids share a target.
    const sharing = this.#byTarget.size === 0 ? undefined : this.#byTarget.get(entry.health.backend.target);
    if (sharing === undefined) {
      this.#endFailureStreak(entry, entry);

      return;
    }
    for (const other of sharing) {
      this.#endFailureStreak(other, entry);
    }
  }

  /** Ends the failure streak and back-off of `sharing` after a dial of `dialed`, which has the same target, succeeded. */
  #endFailureStreak(sharing: Entry, dialed: Entry): void {
    if (sharing.health.dialFailureStreak === 0 && sharing.backoffTimer === undefined) {
      return;
    }

    sharing.health.dialSucceeded();
    this.#failing.delete(sharing);
    sharing.backoffTimer?.cancel();
    sharing.backoffTimer = undefined;
    this.#evaluate(sharing, sharing === dialed ? "dial succeeded" : `a dial of "${dialed.health.backend.id}", which has the same target, succeeded`);
    this.#announceConditionChange();
  }

  /** Returns `entry` and the entries of other ids with its target; most targets have one id. */
  #sharingTarget(entry: Entry): readonly Entry[] {
    const sharing = this.#byTarget.get(entry.health.backend.target);

    return sharing === undefined || sharing.length === 1 ? [entry] : sharing;
  }

  /** Health of every backend of the set, in id order. */
  states(): HealthState[] {
    return this.#set.backends.flatMap((backend) => {
      const state = this.state(backend.id);

      return state === undefined ? [] : [state];
    });
  }

  /** Health of one backend id, if it is in the set. */
  state(id: string): HealthState | undefined {
    const entry = this.#entries.get(id);
    if (entry === undefined) {
      return undefined;
    }

    return entry.health.snapshot(this.#clock.now(), entry.probe === undefined ? undefined : describeProbe(entry.probe));
  }

  #conditionOf(entry: Entry): HealthCondition {
    // Only a back-off makes the condition depend on the time, so the clock is read only then.
    // Every pick of the rotation comes here, and a clock read cost about 45 ns in Bun 1.4.4.
    const health = entry.health;

    return health.condition(health.backoffUntil === undefined ? 0 : this.#clock.now());
  }

  /** Stops every probe and timer; the checker is unusable afterwards. */
  stop(): void {
    this.#stopped = true;
    for (const entry of this.#entries.values()) {
      this.#dispose(entry);
    }
  }

  /**
   * Starts tracking `backend`; with `joiningRunningSet` and a probe, it waits for its first probe
   * result. `oldTarget` is the id's target before, when only its target changed.
   */
  #track(backend: Backend, joiningRunningSet: boolean, oldTarget?: string): void {
    const probe = this.#probeSettings(backend);
    const pending = joiningRunningSet && probe !== undefined;
    const entry: Entry = {
      health: new BackendHealth(backend, pending),
      probe,
      condition: pending ? "pending" : "healthy",
      reported: !pending,
      probeLoop: undefined,
      backoffTimer: undefined,
    };
    this.#entries.set(backend.id, entry);
    if (pending) {
      const joined = oldTarget === undefined ? "joined a running set" : `its target changed from ${oldTarget}`;
      entry.health.cause = `${joined}; no clients until its first probe passes, unless the balancer is degraded`;
      this.#log.info("backend is pending: it gets no clients until its first probe passes, unless the balancer is degraded", { backend: backend.id, target: backend.target, probe: describeProbe(probe) });
    }
    if (probe !== undefined) {
      this.#startProbing(entry);
    }
  }

  #dispose(entry: Entry): void {
    this.#failing.delete(entry);
    this.#stopProbing(entry);
    entry.backoffTimer?.cancel();
    entry.backoffTimer = undefined;
  }

  #entryOf(backend: Backend): Entry | undefined {
    const entry = this.#entries.get(backend.id);

    return entry !== undefined && entry.health.backend.target === backend.target ? entry : undefined;
  }

  /** True when a probe checks `backend`; without one, its health follows its dials only. */
  isProbed(backend: Backend): boolean {
    return this.#probeSettings(backend) !== undefined;
  }

  #probeSettings(backend: Backend): ProbeSettings | undefined {
    const settings = resolveProbeSettings(this.#settings.probe, this.#settings.probeOverrides?.get(backend.id));
    const proxyProtocol = proxyProtocolOf(this.#proxyProtocol, backend);

    return settings === undefined || proxyProtocol === undefined ? settings : { ...settings, proxyProtocol };
  }

  #backoff(): BackoffSettings {
    return { backoffMs: this.#settings.backoffMs ?? 1000, maxBackoffMs: this.#settings.maxBackoffMs ?? 30_000 };
  }

  #startProbing(entry: Entry): void {
    const settings = entry.probe;
    if (this.#stopped || settings === undefined) {
      return;
    }

    entry.probeLoop = new ProbeLoop(entry.health.backend, settings, this.#clock, (failure) => this.#record(entry, settings, failure), this.descriptorShortage);
    entry.probeLoop.start();
  }

  #stopProbing(entry: Entry): void {
    entry.probeLoop?.stop();
    entry.probeLoop = undefined;
  }

  #record(entry: Entry, settings: ProbeSettings, failure: string | undefined): void {
    const health = entry.health;
    const description = describeProbe(settings);
    if (failure === undefined) {
      health.probePassed(settings.rise);
      this.#failing.delete(entry);
      this.#evaluate(entry, `${description} passed${inARow(health.probePasses)}`);

      return;
    }

    const wasUp = health.probeUp;
    health.probeFailed(settings.fall, failure);
    this.#log.debug("probe failed", { backend: health.backend.id, target: health.backend.target, probe: description, err: failure });
    // A backend already skipped for a dial back-off stays unhealthy when its probe falls, but
    // the probe is the reason from now on, so the cause changes with it.
    const cause = `${description} failed${inARow(health.probeFailures)}: ${failure}`;
    this.#evaluate(entry, cause, wasUp && !health.probeUp);
    // While the probe is down, the cause follows its latest failure, as HAProxy's check_status
    // does, so status shows a refused connect once a backend that returned 500 has stopped.
    if (!health.probeUp && entry.condition !== "healthy") {
      health.cause = cause;
    }
  }

  /**
   * Records `cause` when the entry's condition changed, then logs and announces a flip of
   * its health. A change that is no flip (unhealthy to retrying and back) is logged at debug.
   * `reasonChanged` records `cause` also when the condition stays the same.
   */
  #evaluate(entry: Entry, cause: string, reasonChanged = false): void {
    const condition = this.#conditionOf(entry);
    if (this.#entries.get(entry.health.backend.id) !== entry) {
      return;
    }
    if (condition === entry.condition) {
      if (reasonChanged) {
        entry.health.cause = cause;
        this.#log.debug("backend stays unhealthy", { backend: entry.health.backend.id, target: entry.health.backend.target, cause });
      }

      return;
    }

    // The first report of a pending backend is a flip even when it fails, because it was never reported unhealthy.
    const firstReport = entry.condition === "pending" && entry.health.timesUnhealthy === 0;
    entry.condition = condition;
    entry.health.cause = cause;
    const backend = entry.health.backend;
    const healthy = condition === "healthy";
    if (healthy === entry.reported && !(firstReport && !healthy)) {
      this.#log.debug(condition === "retrying" ? "backend is retrying" : "backend stays unhealthy", { backend: backend.id, target: backend.target, cause });
      this.#announceConditionChange();

      return;
    }

    entry.reported = healthy;
    // An unhealthy backend is a failure the balancer routes around, so it is a warning, unless
    // it is disabled: it gets no clients anyway, and a backend in maintenance is expected to fail.
    const disabled = this.#disabled.has(backend.id);
    const fields = disabled ? { backend: backend.id, target: backend.target, cause, disabled } : { backend: backend.id, target: backend.target, cause };
    if (!healthy) {
      entry.health.timesUnhealthy++;
    }
    const level = healthy || disabled ? "info" : "warn";
    this.#log.log(this.#flipLines.take() ? level : "debug", healthy ? "backend is healthy" : "backend is unhealthy", fields);
    this.#updateDegraded();
    for (const listener of this.#listeners) {
      listener(backend, healthy, cause);
    }
    this.#announceConditionChange();
  }

  #announceConditionChange(): void {
    for (const listener of this.#conditionListeners) {
      listener();
    }
  }

  /** Recomputes `degraded` over the enabled backends and logs a change; returns true when it changed. */
  #updateDegraded(): boolean {
    let enabled = 0;
    let healthy = 0;
    for (const [id, entry] of this.#entries) {
      if (!this.#disabled.has(id)) {
        enabled++;
        healthy += entry.reported ? 1 : 0;
      }
    }
    const degraded = enabled > 0 && healthy === 0;
    if (degraded === this.#degraded) {
      return false;
    }

    this.#degraded = degraded;
    if (degraded) {
      this.#log.warn("every enabled backend is unhealthy or pending; degraded: trying all of them in rotation order", { count: enabled });
    } else if (enabled === 0) {
      this.#log.info("no longer degraded: no backend is enabled", { disabled: this.#disabled.size });
    } else {
      this.#log.info("no longer degraded: an enabled backend is healthy", { healthy });
    }

    return true;
  }
}

/** Groups entries by target, keeping only targets of two or more ids. */
function sharedTargets(entries: Iterable<Entry>): Map<string, Entry[]> {
  const byTarget = new Map<string, Entry[]>();
  for (const entry of entries) {
    const target = entry.health.backend.target;
    const sharing = byTarget.get(target);
    if (sharing === undefined) {
      byTarget.set(target, [entry]);
    } else {
      sharing.push(entry);
    }
  }
  for (const [target, sharing] of byTarget) {
    if (sharing.length === 1) {
      byTarget.delete(target);
    }
  }

  return byTarget;
}

function inARow(count: number): string {
  return count === 1 ? "" : ` ${count} times in a row`;
}

/** What happens to open connections of a backend that turns unhealthy. */
export const UNHEALTHY_POLICIES = ["keep", "close"] as const;
export type UnhealthyPolicy = (typeof UNHEALTHY_POLICIES)[number];
