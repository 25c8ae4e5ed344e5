/**
 * The slow start setting (`slowStart`, `--slow-start`, `backends[].slowStart`): for how long a
 * backend that returns gets a growing share of new clients. SlowStart applies it.
 */
import { formatDuration, parseOffOrDuration } from "./duration.ts";

/** Slow start windows of every backend and of single backends, in milliseconds; 0 is off. */
export interface SlowStartSettings {
  /** Window of every backend without one of its own (`slowStart`, `--slow-start`). */
  readonly durationMs: number;
  /** Windows of single backends by id (`backends[].slowStart`, config file only), laid over `durationMs`. */
  readonly byId: ReadonlyMap<string, number>;
}

/** The settings under which no backend has a slow start. */
export const SLOW_START_OFF: SlowStartSettings = Object.freeze({ durationMs: 0, byId: new Map() });

/**
 * Shortest slow start window. It catches a unit typo such as `30ms` for `30s`, and a shorter
 * window would shape the share of almost no clients.
 */
export const MIN_SLOW_START_MS = 1000;

/**
 * Parses a slow start window: `off` (in any case) or `0` turn it off and return 0, else a
 * duration of at least MIN_SLOW_START_MS.
 *
 * @returns the window in milliseconds, or an error message naming the value and the fix.
 */
export function parseSlowStart(text: string): number | string {
  return parseOffOrDuration(text, checkSlowStart);
}

/** Returns the problem with a slow start window in milliseconds, or undefined when it is 0 (off) or at least 1 s. */
export function checkSlowStart(ms: number): string | undefined {
  if (ms !== 0 && ms < MIN_SLOW_START_MS) {
    return `the slow start ${formatDuration(ms)} is shorter than the minimum of ${formatDuration(MIN_SLOW_START_MS)}; use ${formatDuration(MIN_SLOW_START_MS)} or more, such as 30s, or off (0) to turn slow start off`;
  }

  return undefined;
}

/** Returns the window of backend `id` in milliseconds, or 0 when it has no slow start. */
export function slowStartOf(settings: SlowStartSettings, id: string): number {
  return settings.byId.get(id) ?? settings.durationMs;
}

/** True when some backend may have a slow start: the window is on, or a backend turns it on. */
export function usesSlowStart(settings: SlowStartSettings): boolean {
  return settings.durationMs > 0 || [...settings.byId.values()].some((ms) => ms > 0);
}

/** Returns true when both settings give every backend id the same window. */
export function sameSlowStart(a: SlowStartSettings, b: SlowStartSettings): boolean {
  return describeSlowStart(a) === describeSlowStart(b);
}

/** Formats a window as the config file spells it: `off` or a duration such as `30s`. */
export function formatSlowStart(ms: number): string {
  return ms === 0 ? "off" : formatDuration(ms);
}

/** Describes the settings for logs, such as `30s` or `off, api-2=1m`. */
export function describeSlowStart(settings: SlowStartSettings): string {
  const ids = [...settings.byId.keys()].sort();
  const overrides = ids.map((id) => `${id}=${formatSlowStart(settings.byId.get(id)!)}`);

  return [formatSlowStart(settings.durationMs), ...overrides].join(", ");
}
