import type { Backend } from "./backend.ts";
import type { Clock, ClockTimer } from "./clock.ts";
import type { DescriptorShortage } from "./descriptor-shortage.ts";
import { type ProbeSettings, runProbe } from "./probes/probe.ts";
import { errorDetail } from "./probes/probe-error.ts";

/** Receives each probe's outcome: undefined for a pass, else the reason it failed. */
export type ProbeResultHandler = (failure: string | undefined) => void;

/**
 * Probes one backend again and again until stopped.
 *
 * A probe starts, settles (pass, fail or its own timeout, which aborts it and closes its
 * socket, also while the connect is pending), and the next starts one interval after the
 * previous one started, or at once if it took longer. Probes of one loop therefore never
 * overlap, and one loop has at most one socket open.
 */
export class ProbeLoop {
  readonly #backend: Backend;
  readonly #settings: ProbeSettings;
  readonly #clock: Clock;
  readonly #onResult: ProbeResultHandler;
  readonly #shortage: DescriptorShortage | undefined;
  #stopped = false;
  #timer: ClockTimer | undefined;
  #abort: AbortController | undefined;

  /** @param shortage detects a probe that failed for lack of a file descriptor, whose result is dropped, not reported. */
  constructor(backend: Backend, settings: ProbeSettings, clock: Clock, onResult: ProbeResultHandler, shortage?: DescriptorShortage) {
    this.#backend = backend;
    this.#settings = settings;
    this.#clock = clock;
    this.#onResult = onResult;
    this.#shortage = shortage;
  }

  /** Schedules the first probe at once (on the clock). */
  start(): void {
    this.#schedule(0);
  }

  /** Cancels the next probe and aborts one in flight; its result is dropped. */
  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#abort?.abort();
    this.#abort = undefined;
  }

  #schedule(delayMs: number): void {
    if (!this.#stopped) {
      this.#timer = this.#clock.setTimeout(() => void this.#probe(), delayMs);
    }
  }

  async #probe(): Promise<void> {
    const settings = this.#settings;
    const started = this.#clock.now();
    const controller = new AbortController();
    this.#abort = controller;
    let timedOut = false;
    const timeout = this.#clock.setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, settings.timeoutMs);

    let failure: string | undefined;
    let local = false;
    try {
      await runProbe(this.#backend, settings, controller.signal);
    } catch (error) {
      failure = timedOut ? `timed out after ${settings.timeoutMs} ms` : errorDetail(error);
      local = !timedOut && (this.#shortage?.explains(error, { backend: this.#backend.id, target: this.#backend.target }) ?? false);
    }
    timeout.cancel();
    if (this.#stopped) {
      return;
    }

    this.#abort = undefined;
    // A probe that failed for lack of a file descriptor is no sign of the backend's health.
    if (!local) {
      this.#onResult(failure);
    }
    this.#schedule(Math.max(0, settings.intervalMs - (this.#clock.now() - started)));
  }
}
