import { ProbeError } from "./probe-error.ts";

/** The handle a probe attempt settles with: its result, or the ProbeError that failed it. */
export interface ProbeAttempt<T> {
  /** Settles the attempt. Calls after the first one do nothing. */
  settle(result: T | ProbeError): void;
  /** True once the attempt has settled, by `settle` or by the abort of its signal. */
  readonly settled: boolean;
}

/**
 * Runs one probe attempt and returns a promise that settles once: with the value or the
 * ProbeError that `start` passes to `settle`, or with the ProbeError "probe aborted" when
 * `signal` aborts first. An attempt whose signal has already aborted rejects without calling `start`.
 *
 * `start` opens the attempt's sockets and returns the cleanup that runs once, with the result,
 * when the attempt settles, such as closing those sockets. So `start` must not settle the
 * attempt itself. Its sockets settle it later, from their events.
 */
export function runProbeAttempt<T>(signal: AbortSignal, start: (attempt: ProbeAttempt<T>) => (result: T | ProbeError) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) {
      reject(new ProbeError("probe aborted"));

      return;
    }

    let cleanup: ((result: T | ProbeError) => void) | undefined;
    const attempt = {
      settled: false,
      settle(result: T | ProbeError): void {
        if (attempt.settled) {
          return;
        }
        attempt.settled = true;
        signal.removeEventListener("abort", onAbort);
        cleanup?.(result);
        if (result instanceof ProbeError) {
          reject(result);
        } else {
          resolve(result);
        }
      },
    };
    const onAbort = (): void => attempt.settle(new ProbeError("probe aborted"));
    cleanup = start(attempt);
    signal.addEventListener("abort", onAbort);
  });
}
