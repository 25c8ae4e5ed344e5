/** Units a duration string may use, in milliseconds. */
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Longest duration accepted: one day, far beyond any sensible timeout. */
export const MAX_DURATION_MS = 86_400_000;

/** Durations that an error may suggest, tried in this order, so that a setting suggests two it accepts. */
const EXAMPLE_DURATIONS_MS = [500, 3000, 30_000, 60_000];

/**
 * Parses a duration such as `500ms`, `3s`, `1.5s`, `2m` or `1h` into milliseconds.
 * A bare `0` means zero (for "off").
 *
 * @param examples the valid durations an error suggests
 * @returns the duration in milliseconds, or an error message naming the value and the valid forms.
 */
export function parseDuration(text: string, examples = "500ms or 3s"): number | string {
  const value = text.trim();
  if (value === "0") {
    return 0;
  }

  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(value);
  if (match === null) {
    return `invalid duration "${text}": use a number and a unit (ms, s, m or h), such as ${examples}`;
  }

  const ms = Math.round(Number(match[1]) * UNITS[match[2]!]!);
  if (ms > MAX_DURATION_MS) {
    return `invalid duration "${text}": the maximum is 24h`;
  }

  return ms;
}

/**
 * Parses a setting that is `off` (in any case) or a duration that `check` accepts, such as the
 * idle timeout. `off` and `0` return 0, and `check` returns the problem with a duration.
 *
 * @returns the duration in milliseconds, or an error message naming the value and the fix.
 */
export function parseOffOrDuration(text: string, check: (ms: number) => string | undefined): number | string {
  if (text.trim().toLowerCase() === "off") {
    return 0;
  }
  const ms = parseDuration(text, acceptedExamples(text, check));
  if (typeof ms === "string") {
    return `${ms}, or off`;
  }

  return check(ms) ?? ms;
}

/**
 * Returns the durations that an error for `text` suggests, all of them accepted by `check`.
 * A bare number gets itself in seconds, such as `30s` for `30`. Other text gets two of
 * EXAMPLE_DURATIONS_MS, such as `3s or 30s` for a setting whose minimum is 1 s.
 */
function acceptedExamples(text: string, check: (ms: number) => string | undefined): string {
  const accepted = (ms: number): boolean => ms <= MAX_DURATION_MS && check(ms) === undefined;
  const number = text.trim();
  if (/^\d+(?:\.\d+)?$/.test(number) && accepted(Number(number) * 1000)) {
    return `${number}s`;
  }

  return EXAMPLE_DURATIONS_MS.filter(accepted).slice(0, 2).map(formatDuration).join(" or ");
}

/** Formats milliseconds as the shortest exact duration string. */
export function formatDuration(ms: number): string {
  if (ms === 0) {
    return "0";
  }
  for (const [unit, size] of [["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const) {
    if (ms % size === 0) {
      return `${ms / size}${unit}`;
    }
  }

  return `${ms}ms`;
}
