/** A cancellable timer handle, as returned by `Clock.setTimeout`. */
export interface ClockTimer {
  cancel(): void;
}

/**
 * The time source and timers of components that wait, so tests can drive them with a
 * fake clock instead of sleeping. Times are milliseconds on a monotonic scale.
 */
export interface Clock {
  now(): number;
  setTimeout(callback: () => void, delayMs: number): ClockTimer;
}

/** The real clock: `performance.now()` and the runtime's timers. */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout(callback, delayMs) {
    const timer = setTimeout(callback, delayMs);

    return { cancel: () => clearTimeout(timer) };
  },
};
