import type { Backend } from "./backend.ts";
import { type BackendSet, diffBackendSets } from "./backend-set.ts";
import type { Clock, ClockTimer } from "./clock.ts";
import { formatDuration } from "./duration.ts";
import { type LogFields, type Logger, silentLogger } from "./logger.ts";
import { formatSlowStart, SLOW_START_OFF, type SlowStartSettings, slowStartOf } from "./slow-start-setting.ts";

/**
 * Weight of a backend whose slow start just began, as a share of a full weight. Envoy's
 * `min_weight_percent` has the same default of 10%. A floor above 0 sends the returning
 * backend a few clients at once, and 10% keeps a burst of reconnects to a tenth of its share.
 * HAProxy's configuration manual (1.6) describes its slowstart weight as growing from 1 to
 * 100%, updated at every health check.
 */
export const SLOW_START_FLOOR = 0.1;

/** Describes a slow start that began, for command output: `with a slow start: its share of new clients grows from 10% to a full share over 30s`. */
export function describeSlowStartGrowth(durationMs: number): string {
  return `with a slow start: its share of new clients grows from ${SLOW_START_FLOOR * 100}% to a full share over ${formatDuration(durationMs)}`;
}

/** The weights a selector reads for each pick; SlowStart is the implementation. */
export interface SlowStartWeights {
  /** Windows in progress. While it is 0 every weight is 1, so a selector can skip the weights. */
  readonly size: number;
  /** Returns the clock time to pass to `weightOf`, read once per pick. */
  now(): number;
  /** Returns the weight of `backend` at clock time `now`: from SLOW_START_FLOOR to 1 in a window, and 1 outside one. */
  weightOf(backend: Backend, now: number): number;
}

/** A window in progress, as the main thread sends it to relay workers. */
export interface SlowStartWindow {
  id: string;
  target: string;
  /** Milliseconds since the window began. */
  elapsedMs: number;
  durationMs: number;
}

/** A window of one backend id, on this thread's clock. */
interface Window {
  target: string;
  startedAt: number;
  durationMs: number;
}

/**
 * The slow start windows of one thread. During its window, the weight of a backend grows
 * linearly from SLOW_START_FLOOR to 1, and the selectors give it that share of the new clients
 * it would get otherwise.
 *
 * The main thread's instance leads. A window begins when a backend turns healthy again (see
 * `healthFlipped`), is enabled again, or joins the set or changes target while tinylb runs (see
 * `setReplaced`). It ends when its time is over, when the backend turns unhealthy or leaves the
 * set, or when a reload turns its slow start off. Each begin and each end is logged once at info
 * level, and each end that the backend's health caused at debug level.
 *
 * A relay worker's instance follows: it ignores those events and takes the main thread's
 * windows through `replace`, so that every thread applies the same windows, each on its own
 * clock. It logs the end of a window at debug level only.
 */
export class SlowStart implements SlowStartWeights {
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #leads: boolean;
  #settings: SlowStartSettings = SLOW_START_OFF;
  readonly #windows = new Map<string, Window>();
  /**
   * Backends that joined pending (see HealthChecker), by id, until their first probe result:
   * the target, and the cause of the window that begins when that probe passes, or undefined
   * when the change that added them begins none.
   */
  readonly #awaitingProbe = new Map<string, { target: string; cause: string | undefined }>();
  readonly #listeners: (() => void)[] = [];
  /** Runs when the window that ends first is over. */
  #timer: ClockTimer | undefined;
  #stopped = false;

  /** @param leads true in the main thread; false in a relay worker, which follows the main thread's windows. */
  constructor(clock: Clock, logger: Logger = silentLogger, leads = true) {
    this.#clock = clock;
    this.#log = logger.with({ component: "slow-start" });
    this.#leads = leads;
  }

  get size(): number {
    return this.#windows.size;
  }

  /** The settings of the last `configure`. */
  get settings(): SlowStartSettings {
    return this.#settings;
  }

  now(): number {
    return this.#clock.now();
  }

  weightOf(backend: Backend, now: number): number {
    const window = this.#windows.get(backend.id);
    if (window === undefined || window.target !== backend.target) {
      return 1;
    }
    const elapsed = Math.max(0, now - window.startedAt);

    return elapsed >= window.durationMs ? 1 : SLOW_START_FLOOR + ((1 - SLOW_START_FLOOR) * elapsed) / window.durationMs;
  }

  /** Returns the milliseconds until the window of `backend` ends, or undefined outside a window. */
  remainingMs(backend: Backend): number | undefined {
    const window = this.#windows.get(backend.id);
    if (window === undefined || window.target !== backend.target) {
      return undefined;
    }
    const remaining = window.startedAt + window.durationMs - this.#clock.now();

    return remaining > 0 ? remaining : undefined;
  }

  /** Returns the windows in progress, for relay workers. */
  windows(): SlowStartWindow[] {
    const now = this.#clock.now();

    return Array.from(this.#windows, ([id, window]) => ({ id, target: window.target, elapsedMs: now - window.startedAt, durationMs: window.durationMs }));
  }

  /** Calls `listener` after windows began or ended other than by their time running out, so that relay workers can follow. */
  onChange(listener: () => void): void {
    this.#listeners.push(listener);
  }

  /**
   * Applies new settings. In the leading instance, windows in progress take their backend's new
   * duration, still counted from their start, so a shorter one may end them at once, and 0 ends
   * them. A following instance only stores the settings, since the main thread's windows carry
   * their duration.
   */
  configure(settings: SlowStartSettings): void {
    this.#settings = settings;
    if (!this.#leads) {
      return;
    }

    const turnedOff: string[] = [];
    for (const [id, window] of this.#windows) {
      window.durationMs = slowStartOf(settings, id);
      if (window.durationMs === 0) {
        this.#windows.delete(id);
        turnedOff.push(id);
      }
    }
    if (turnedOff.length > 0) {
      this.#log.info("slow start ended", { ...idFields(turnedOff), cause: "the reloaded config turned its slow start off" });
    }
    this.#endDue();
    this.#changed();
  }

  /** Begins a window for each of `backends` whose slow start is on, in the leading instance. `cause` goes on the log line. */
  begin(backends: readonly Backend[], cause: string): void {
    const starting = backends.filter((backend) => slowStartOf(this.#settings, backend.id) > 0);
    if (!this.#leads || this.#stopped || starting.length === 0) {
      return;
    }

    const now = this.#clock.now();
    for (const backend of starting) {
      this.#windows.set(backend.id, { target: backend.target, startedAt: now, durationMs: slowStartOf(this.#settings, backend.id) });
    }
    const durations = new Set(starting.map((backend) => formatSlowStart(slowStartOf(this.#settings, backend.id))));
    this.#log.info("slow start began", { ...backendFields(starting), cause, duration: [...durations].join(",") });
    this.#arm();
    this.#changed();
  }

  /**
   * Begins a window for a backend that turned healthy again, and ends the window of a backend
   * that turned unhealthy. A passing first result of a backend that joined pending begins the
   * window that its joining would have begun.
   */
  healthFlipped(backend: Backend, healthy: boolean): void {
    if (!this.#leads) {
      return;
    }
    const awaiting = this.#awaitingProbe.get(backend.id);
    if (awaiting !== undefined && awaiting.target === backend.target) {
      this.#awaitingProbe.delete(backend.id);
      if (healthy && awaiting.cause !== undefined) {
        this.begin([backend], `${awaiting.cause}; first probe passed`);
      }

      return;
    }
    if (healthy) {
      this.begin([backend], "turned healthy again");

      return;
    }
    if (this.#windows.get(backend.id)?.target === backend.target) {
      this.#windows.delete(backend.id);
      this.#log.debug("slow start ended", { backend: backend.id, target: backend.target, cause: "turned unhealthy" });
      this.#arm();
      this.#changed();
    }
  }

  /**
   * Applies a set change. Windows of ids that left `set` or changed target end. The leading
   * instance then begins a window for each backend that joined the set or changed target,
   * except in two cases, which therefore count as start-up as HAProxy's slowstart does:
   * - no backend of `previous` stays in `set` with its target. With every backend new, as at
   *   start-up, equal weights would give each the share it has without slow start.
   * - `discovery` is true: the change comes from a provider's first set, such as the first
   *   answer of DNS or the first EndpointSlice list, so its backends were serving already.
   *
   * A backend for which `isPending` returns true gets no clients until its first probe passes,
   * so its window begins at that pass (see `healthFlipped`) rather than now.
   */
  setReplaced(previous: BackendSet, set: BackendSet, discovery = false, isPending: (backend: Backend) => boolean = () => false): void {
    for (const [id, window] of this.#windows) {
      if (set.get(id)?.target !== window.target) {
        this.#windows.delete(id);
      }
    }
    for (const [id, awaiting] of this.#awaitingProbe) {
      if (set.get(id)?.target !== awaiting.target) {
        this.#awaitingProbe.delete(id);
      }
    }
    this.#arm();
    if (!this.#leads) {
      return;
    }

    const change = diffBackendSets(previous, set);
    const staying = previous.size - change.removed.length - change.retargeted.length;
    const beginsWindows = !discovery && staying > 0;
    // Pending backends wait for their first probe, and the others begin their window now.
    const readyOf = (backends: readonly Backend[], cause: string): Backend[] =>
      backends.filter((backend) => {
        if (!isPending(backend)) {
          return true;
        }
        this.#awaitingProbe.set(backend.id, { target: backend.target, cause: beginsWindows ? cause : undefined });

        return false;
      });
    const added = readyOf(change.added, "joined the set");
    const retargeted = readyOf(
      change.retargeted.map((entry) => entry.backend),
      "changed target",
    );
    if (beginsWindows) {
      this.begin(added, "joined the set");
      this.begin(retargeted, "changed target");
    }
  }

  /** Replaces every window with the main thread's, as a relay worker does. Elapsed times count on from now, on this thread's clock. */
  replace(windows: readonly SlowStartWindow[]): void {
    const now = this.#clock.now();
    this.#windows.clear();
    for (const window of windows) {
      if (window.elapsedMs < window.durationMs) {
        this.#windows.set(window.id, { target: window.target, startedAt: now - window.elapsedMs, durationMs: window.durationMs });
      }
    }
    this.#arm();
  }

  /** Ends every window and cancels the timer. No window begins afterwards. */
  stop(): void {
    this.#stopped = true;
    this.#windows.clear();
    this.#awaitingProbe.clear();
    this.#arm();
  }

  /** Sets the timer to the end of the window that ends first. */
  #arm(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    let firstEnd = Infinity;
    for (const window of this.#windows.values()) {
      firstEnd = Math.min(firstEnd, window.startedAt + window.durationMs);
    }
    if (firstEnd === Infinity) {
      return;
    }

    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#endDue();
    }, Math.max(0, firstEnd - this.#clock.now()));
  }

  /** Ends the windows whose time is over, logs them in one line, and sets the timer for the next. */
  #endDue(): void {
    const now = this.#clock.now();
    const ended: string[] = [];
    for (const [id, window] of this.#windows) {
      if (now >= window.startedAt + window.durationMs) {
        this.#windows.delete(id);
        ended.push(id);
      }
    }
    if (ended.length > 0) {
      this.#log.log(this.#leads ? "info" : "debug", "slow start ended", { ...idFields(ended), cause: "its window is over" });
    }
    this.#arm();
  }

  #changed(): void {
    for (const listener of this.#listeners) {
      listener();
    }
  }
}

/** Log fields naming backends: the id and target of one, or the ids and count of several. */
function backendFields(backends: readonly Backend[]): LogFields {
  return backends.length === 1 ? { backend: backends[0]!.id, target: backends[0]!.target } : idFields(backends.map((backend) => backend.id));
}

/** Log fields naming backend ids: the id of one, or the ids and count of several. */
function idFields(ids: readonly string[]): LogFields {
  return ids.length === 1 ? { backend: ids[0] } : { backends: ids.join(","), count: ids.length };
}
