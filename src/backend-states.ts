import { type Logger, silentLogger } from "./logger.ts";
import type { Server } from "./server.ts";
import { slowStartOf } from "./slow-start-setting.ts";
import { relayWorkersOf } from "./worker-pool.ts";

/** The states an operator can put a backend in: in the rotation, or out of it. */
export const BACKEND_STATES = ["enabled", "disabled"] as const;
export type BackendState = (typeof BACKEND_STATES)[number];

/** The outcome of a state change, as `PUT /v1/backends/{id}/state` returns it. */
export interface BackendStateChange {
  id: string;
  target: string;
  state: BackendState;
  /** False when the backend was in `state` already. */
  changed: boolean;
  /** Connections closed in every thread; present only when closing them was requested. */
  closedConnections?: number;
  /**
   * True when a disable found the backend disabled by the config file's `disabled` key: the mark
   * is the command's now, so it stays when a reload drops the key. Present only then.
   */
  fromConfigFile?: boolean;
  /** Milliseconds of the slow start window that the enable began; present only when it began one. */
  slowStartMs?: number;
}

/** The reason given to each connection that a disable with `closeConnections` closes. */
const CLOSED_BY_DISABLE = "backend disabled with its connections closed";

/**
 * Disables and enables backends of a running balancer, in the main thread and its relay
 * workers, for the admin API.
 *
 * A disabled backend gets no new clients in any thread: the rotation, failover and the
 * degraded fallback pass over it. Its open connections stay unless the disable closes them,
 * and its probes keep running. The mark belongs to the id (see DisabledBackends), and with
 * `--state-file` it survives a restart. A backend that is enabled again begins a slow start
 * when slow start is on.
 */
export class BackendStates {
  readonly #server: Server;
  readonly #log: Logger;

  constructor(server: Server, logger: Logger = silentLogger) {
    this.#server = server;
    this.#log = logger.with({ component: "admin" });
  }

  /** Returns the state of backend `id`, or undefined when the running set has no such id. */
  state(id: string): BackendState | undefined {
    if (this.#server.set.get(id) === undefined) {
      return undefined;
    }

    return this.#server.disabled.has(id) ? "disabled" : "enabled";
  }

  /**
   * Puts backend `id` in `state` and logs the change. With `closeConnections` (only for
   * `disabled`), it also closes the connections opened for the id in every thread, also when
   * the id was disabled already, and gives up the dials in flight to it. Connections of other
   * ids with the same target stay. Returns undefined when the running set has no such id.
   *
   * The relay workers apply the new state when they read the message, a moment after this
   * resolves unless connections were closed: then it waits up to 1 s for each worker's count.
   */
  async change(id: string, state: BackendState, closeConnections = false): Promise<BackendStateChange | undefined> {
    const backend = this.#server.set.get(id);
    if (backend === undefined) {
      return undefined;
    }

    const disabled = this.#server.disabled;
    const fromConfigFile = state === "disabled" && disabled.originOf(id) === "config";
    const changed = state === "disabled" ? disabled.disable(id) : disabled.enable(id);
    const result: BackendStateChange = { id, target: backend.target, state, changed, ...(fromConfigFile ? { fromConfigFile } : {}) };
    const fields = { backend: id, target: backend.target, state };
    if (closeConnections && state === "disabled") {
      // The workers got the new state first, because their messages arrive in order.
      const closedInWorkers = relayWorkersOf(this.#server)?.closeBackend(id, CLOSED_BY_DISABLE) ?? Promise.resolve(0);
      const closedInMain = this.#server.closeBackendConnections(id, CLOSED_BY_DISABLE);
      result.closedConnections = closedInMain + (await closedInWorkers);
    }

    this.#logChange(result, fields);
    if (changed && state === "enabled") {
      // Like a backend that returns healthy, one that was out of the rotation has few connections.
      const slowStart = this.#server.slowStart;
      slowStart.begin([backend], "enabled again");
      if (slowStart.remainingMs(backend) !== undefined) {
        result.slowStartMs = slowStartOf(slowStart.settings, id);
      }
    }

    return result;
  }

  #logChange(result: BackendStateChange, fields: { backend: string; target: string; state: BackendState }): void {
    const closed = result.closedConnections === undefined ? {} : { closed: result.closedConnections };
    if (result.changed) {
      this.#log.info(`backend ${result.state}`, { ...fields, ...closed });
    } else if (result.closedConnections !== undefined) {
      this.#log.info("closed connections of disabled backend", { ...fields, ...closed });
    } else {
      this.#log.debug(`backend already ${result.state}; nothing changed`, fields);
    }

    if (result.changed && result.state === "disabled" && this.#server.disabled.coversAll(this.#server.set)) {
      this.#log.warn("every backend is disabled; clients are closed until one is enabled", { disabled: this.#server.disabled.ids().join(",") });
    }
  }
}
