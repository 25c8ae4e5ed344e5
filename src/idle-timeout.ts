/**
 * The idle timeout setting (`idleTimeout`, `--idle-timeout`): how long a connection may carry
 * no byte in either direction before tinylb closes it. IdleSweeper enforces it.
 */
import { formatDuration, parseOffOrDuration } from "./duration.ts";

/**
 * Shortest idle timeout. IdleSweeper checks every connection four times per timeout, so a
 * shorter one would sweep the pool more than four times a second.
 */
export const MIN_IDLE_TIMEOUT_MS = 1000;

/**
 * Parses an idle timeout: `off` (in any case) or `0` turn it off and return 0, else a duration
 * of at least MIN_IDLE_TIMEOUT_MS.
 *
 * @returns the timeout in milliseconds, or an error message naming the value and the fix.
 */
export function parseIdleTimeout(text: string): number | string {
  return parseOffOrDuration(text, checkIdleTimeout);
}

/** Returns the problem with an idle timeout in milliseconds, or undefined when it is 0 (off) or at least 1 s. */
export function checkIdleTimeout(ms: number): string | undefined {
  if (ms !== 0 && ms < MIN_IDLE_TIMEOUT_MS) {
    return `the idle timeout ${formatDuration(ms)} is shorter than the minimum of ${formatDuration(MIN_IDLE_TIMEOUT_MS)}; use ${formatDuration(MIN_IDLE_TIMEOUT_MS)} or more, or off (0) to keep idle connections open`;
  }

  return undefined;
}
