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
 * socket), and the next starts one interval after the previous one started, or at once
 * if it took longer. Probes of one loop therefore never overlap.
 *
 * A connect cannot be cancelled, so against a target that drops SYNs the connect of a timed
 * out probe keeps its socket until the kernel gives up, about two minutes on Linux defaults.
 * While it does, the next probes fail at once without a socket of their own, so one loop
 * keeps at most one descriptor.
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
  /** The connect of the last probe while it is in flight, also after that probe timed out. */
  #connecting: Promise<unknown> | undefined;

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

  #track(connecting: Promise<unknown>): void {
    this.#connecting = connecting;
    const settled = (): void => {
      if (this.#connecting === connecting) {
        this.#connecting = undefined;
      }
    };
    connecting.then(settled, settled);
  }

  #schedule(delayMs: number): void {
    if (!this.#stopped) {
      this.#timer = this.#clock.setTimeout(() => void this.#probe(), delayMs);
    }
  }

  async #probe(): Promise<void> {
    const settings = this.#settings;
    const started = this.#clock.now();
    if (this.#connecting !== undefined) {
      this.#onResult("the connect of an earlier probe is still in flight, so the target may drop SYNs; no new connect was started");
      this.#schedule(settings.intervalMs);

      return;
    }
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
      await runProbe(this.#backend, settings, controller.signal, (connecting) => this.#track(connecting));
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
