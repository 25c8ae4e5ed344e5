import type { ReloadResult } from "./providers/file-provider.ts";
import type { Server } from "./server.ts";
import type { ServiceNotifier } from "./service-notifier.ts";

/** Milliseconds between checks of the status line, which is sent only when its text changed. */
const STATUS_INTERVAL_MS = 1000;

/** Maximum characters of a rejected reload's error in the status line, which `systemctl status` shows on one line. */
const MAX_ERROR_CHARS = 300;

/**
 * Returns the status line that the service manager shows (`systemctl status`): the backends
 * that are up, healthy and enabled, out of the set, and the open connections of every thread.
 * A rejected config reload is added until a good one is applied.
 */
export function describeServiceStatus(server: Server, lastReload?: ReloadResult): string {
  const states = server.health.states();
  const up = states.filter((state) => state.healthy && !server.disabled.has(state.id)).length;
  const line = `${up} of ${server.set.size} backends up, ${countConnections(server.activeCountInAllThreads)} open`;
  if (lastReload?.result !== "rejected") {
    return line;
  }

  return `${line}; config reload rejected at ${lastReload.at.replace(/\.\d+Z$/, "Z")}: ${oneLine(lastReload.error ?? "no error given")}; serving the last good config`;
}

/** Returns the status line of a draining tinylb, such as "draining 1 open connection". */
export function describeDrainStatus(server: Server): string {
  const open = server.activeCountInAllThreads;

  return `draining ${open} open connection${open === 1 ? "" : "s"}`;
}

function countConnections(count: number): string {
  return `${count} connection${count === 1 ? "" : "s"}`;
}

/** Replaces control characters, so that the error fits the one-line STATUS=, and cuts it to MAX_ERROR_CHARS. */
function oneLine(text: string): string {
  const flat = text.replace(/[\u0000-\u001f\u007f]+/g, " ");

  return flat.length > MAX_ERROR_CHARS ? `${flat.slice(0, MAX_ERROR_CHARS - 3)}...` : flat;
}

/**
 * The status line sent to the service manager. READY=1 and STOPPING=1 carry it, and a timer
 * checks it every STATUS_INTERVAL_MS and sends `STATUS=` only when its text changed, so the
 * connection count follows within about a second. Once `stopping` was called it describes
 * the drain, and no later call switches it back. Without NOTIFY_SOCKET it sends nothing and
 * starts no timer.
 */
export class ServiceStatus {
  readonly #server: Server;
  readonly #notifier: ServiceNotifier;
  readonly #lastReload: () => ReloadResult | undefined;
  #timer: Timer | undefined;
  #draining = false;
  /** The text sent last, with READY=1, STOPPING=1 or STATUS=. */
  #sent: string | undefined;

  /** @param lastReload returns the latest reload of the config file, undefined without one. */
  constructor(server: Server, notifier: ServiceNotifier, lastReload: () => ReloadResult | undefined = () => undefined) {
    this.#server = server;
    this.#notifier = notifier;
    this.#lastReload = lastReload;
  }

  /** Sends READY=1 with the status line, and starts the timer on the first call. */
  ready(): void {
    if (!this.#notifier.enabled || this.#draining) {
      return;
    }

    this.#sent = this.#describe();
    this.#notifier.ready(this.#sent);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#refresh(), STATUS_INTERVAL_MS);
      this.#timer.unref();
    }
  }

  /** Sends STOPPING=1 with the drain's status line; the timer goes on updating its count. */
  stopping(): void {
    if (!this.#notifier.enabled) {
      return;
    }

    this.#draining = true;
    this.#sent = this.#describe();
    this.#notifier.stopping(this.#sent);
  }

  /** Stops the timer. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #refresh(): void {
    const text = this.#describe();
    if (text !== this.#sent) {
      this.#sent = text;
      this.#notifier.status(text);
    }
  }

  #describe(): string {
    return this.#draining ? describeDrainStatus(this.#server) : describeServiceStatus(this.#server, this.#lastReload());
  }
}
