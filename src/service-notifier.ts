import type { Logger } from "./logger.ts";
import { monotonicMicroseconds, notifySocketProblem, sendDatagram } from "./notify-socket.ts";
import { ReconnectBackoff } from "./providers/reconnect-backoff.ts";

/** The environment variables that the service manager sets for notifications, which tinylb removes so that no child reads them. */
const NOTIFY_VARIABLES = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] as const;

/** Maximum timer delay (2^31 - 1 ms, a signed 32-bit count), which a longer watchdog interval is cut to. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Milliseconds before the first resend of a state notification that failed, doubled per failure up to RESEND_MAX_MS. */
const RESEND_INITIAL_MS = 100;
const RESEND_MAX_MS = 5000;

/** Sends one datagram; `sendDatagram` in production, a recorder in tests. */
export type DatagramSender = (address: string, message: string) => string | undefined;

/**
 * Notifications to the service manager, as systemd's sd_notify(3) describes them: `READY=1`
 * once tinylb serves, `RELOADING=1` during a reload, `STOPPING=1` at shutdown, `STATUS=` with a
 * one-line summary, and `WATCHDOG=1` at half the interval of WATCHDOG_USEC.
 *
 * Without NOTIFY_SOCKET every method does nothing. A failure never stops tinylb. The first
 * failure after a success is logged as a warning, later ones at debug, and the first success
 * after them at info, because systemd may not listen at all, as under `Type=exec`.
 * A state notification (READY=1, RELOADING=1 or STOPPING=1) that fails, such as with EAGAIN
 * from a full receive queue, is sent again with the latest status line, after a back-off from
 * RESEND_INITIAL_MS up to RESEND_MAX_MS, or at once when a STATUS= is sent, until it is sent or
 * a newer state replaces it. A STATUS= or WATCHDOG=1 that fails is not sent again.
 */
export class ServiceNotifier {
  readonly #address: string | undefined;
  readonly #watchdogMs: number | undefined;
  readonly #log: Logger;
  readonly #send: DatagramSender;
  #watchdog: Timer | undefined;
  #failures = 0;
  /** True from a failed send until the next one that succeeds. */
  #failing = false;
  /** The state notification still to be sent, without its status line, and whether it carries one. */
  #pendingState: { message: string; withStatus: boolean } | undefined;
  /** The status line sent last, which a resent state notification carries. */
  #status = "";
  #resend: Timer | undefined;
  readonly #resendBackoff = new ReconnectBackoff({ initialMs: RESEND_INITIAL_MS, maxMs: RESEND_MAX_MS });

  private constructor(address: string | undefined, watchdogMs: number | undefined, log: Logger, send: DatagramSender) {
    this.#address = address;
    this.#watchdogMs = watchdogMs;
    this.#log = log;
    this.#send = send;
  }

  /**
   * Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID, and removes them from `env`. An
   * unusable value is logged as one warning, and notifications stay off then.
   */
  static fromEnvironment(log: Logger, env: Record<string, string | undefined> = process.env, pid = process.pid, send: DatagramSender = sendDatagram): ServiceNotifier {
    const { NOTIFY_SOCKET: address, WATCHDOG_USEC: watchdogUsec, WATCHDOG_PID: watchdogPid } = env;
    for (const name of NOTIFY_VARIABLES) {
      delete env[name];
    }
    const problem = address === undefined ? undefined : notifySocketProblem(address);
    if (problem !== undefined) {
      log.warn("invalid NOTIFY_SOCKET; not sending notifications to the service manager", { socket: address, err: problem });

      return new ServiceNotifier(undefined, undefined, log, send);
    }

    return new ServiceNotifier(address, watchdogInterval(watchdogUsec, watchdogPid, pid, log), log, send);
  }

  /** True when a service manager listens for notifications. */
  get enabled(): boolean {
    return this.#address !== undefined;
  }

  /** Reports that tinylb serves, with a status line, and starts the watchdog pings when WATCHDOG_USEC is set. */
  ready(status: string): void {
    this.#status = status;
    this.#notifyState("READY=1", true);
    if (this.#watchdogMs !== undefined && this.#watchdog === undefined) {
      // Half the interval, as sd_watchdog_enabled(3) advises. The timer runs on the main
      // thread's event loop, so a blocked loop misses pings and systemd restarts tinylb.
      this.#watchdog = setInterval(() => this.#notify("WATCHDOG=1"), Math.min(this.#watchdogMs / 2, MAX_TIMER_MS));
      this.#watchdog.unref();
    }
  }

  /** Reports that a reload began, with the CLOCK_MONOTONIC time that systemd requires with it. */
  reloading(): void {
    const now = monotonicMicroseconds();
    this.#notifyState(now === undefined ? "RELOADING=1" : `RELOADING=1\nMONOTONIC_USEC=${now}`, false);
  }

  /** Replaces the status line. */
  status(status: string): void {
    this.#status = status;
    const sent = this.#notify(`STATUS=${status}`);
    // The receiver takes messages again, so a state notification still to be resent need not wait for its timer.
    if (sent && this.#pendingState !== undefined) {
      clearTimeout(this.#resend);
      this.#resend = undefined;
      this.#sendPendingState();
    }
  }

  /** Reports that tinylb stops, with a status line, and stops the watchdog pings. */
  stopping(status: string): void {
    clearInterval(this.#watchdog);
    this.#watchdog = undefined;
    this.#status = status;
    this.#notifyState("STOPPING=1", true);
  }

  /** Sends a state notification, which replaces any earlier one still to be resent. */
  #notifyState(message: string, withStatus: boolean): void {
    clearTimeout(this.#resend);
    this.#resend = undefined;
    this.#resendBackoff.reset();
    this.#pendingState = { message, withStatus };
    this.#sendPendingState();
  }

  #sendPendingState(): void {
    const pending = this.#pendingState;
    if (pending === undefined) {
      return;
    }

    const resending = this.#resendBackoff.failures > 0;
    if (this.#notify(pending.withStatus ? `${pending.message}\nSTATUS=${this.#status}` : pending.message, resending)) {
      this.#pendingState = undefined;

      return;
    }
    this.#resend = setTimeout(() => {
      this.#resend = undefined;
      this.#sendPendingState();
    }, this.#resendBackoff.nextDelayMs());
    this.#resend.unref();
  }

  /**
   * Sends one message and logs a change between failing and working; returns true once sent.
   * A failed resend (`quiet`) is counted but not logged, so that a socket that stays missing logs no line per resend.
   */
  #notify(message: string, quiet = false): boolean {
    if (this.#address === undefined) {
      return true;
    }

    const error = this.#send(this.#address, message);
    if (error === undefined) {
      if (this.#failing) {
        this.#failing = false;
        this.#log.info("notifications reach the service manager again", { socket: this.#address, failures: this.#failures });
      }

      return true;
    }
    this.#failures++;
    const fields = { socket: this.#address, err: error, failures: this.#failures };
    if (!this.#failing) {
      this.#failing = true;
      this.#log.warn("sending a notification to the service manager failed; later failures are logged at debug until one succeeds", fields);
    } else if (!quiet) {
      this.#log.debug("sending a notification to the service manager failed", fields);
    }

    return false;
  }
}

/**
 * Returns the watchdog interval in milliseconds, or undefined when WATCHDOG_USEC is unset,
 * or WATCHDOG_PID names another process. An invalid value is logged as a warning.
 */
function watchdogInterval(usec: string | undefined, watchdogPid: string | undefined, pid: number, log: Logger): number | undefined {
  if (usec === undefined || (watchdogPid !== undefined && watchdogPid !== String(pid))) {
    return undefined;
  }
  if (!/^\d{1,15}$/.test(usec) || Number(usec) === 0) {
    log.warn("invalid WATCHDOG_USEC; not sending watchdog notifications", { value: usec, err: "expected a whole number of microseconds above 0" });

    return undefined;
  }

  return Number(usec) / 1000;
}
