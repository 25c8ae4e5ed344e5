import type { Backend } from "./backend.ts";
import type { Clock, ClockTimer } from "./clock.ts";
import { type ProbeSettings, runProbe } from "./probes/probe.ts";
import { errorDetail } from "./probes/probe-error.ts";

/** Receives each probe's outcome: undefined for a pass, else the reason it failed. */
export type ProbeResultHandler = (failure: string | undefined) => void;

/**
 * Probes one backend again and again until stopped.
 *
 * A probe starts, settles (pass, fail or its own timeout, which aborts it and closes its
 * socket), and the next starts one interval after the previous one started, or at once
 * if it took longer. Probes of one loop therefore never overlap.
 */
export class ProbeLoop {
  readonly #backend: Backend;
  readonly #settings: ProbeSettings;
  readonly #clock: Clock;
  readonly #onResult: ProbeResultHandler;
  #stopped = false;
  #timer: ClockTimer | undefined;
  #abort: AbortController | undefined;

  constructor(backend: Backend, settings: ProbeSettings, clock: Clock, onResult: ProbeResultHandler) {
    this.#backend = backend;
    this.#settings = settings;
    this.#clock = clock;
    this.#onResult = onResult;
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
    try {
      await runProbe(this.#backend, settings, controller.signal);
    } catch (error) {
      failure = timedOut ? `timed out after ${settings.timeoutMs} ms` : errorDetail(error);
    }
    timeout.cancel();
    if (this.#stopped) {
      return;
    }

    this.#abort = undefined;
    this.#onResult(failure);
    this.#schedule(Math.max(0, settings.intervalMs - (this.#clock.now() - started)));
  }
}
