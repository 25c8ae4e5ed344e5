import type { SocketHandler } from "bun";
import type { Address } from "./address.ts";
import { DescriptorBudget } from "./descriptor-budget.ts";
import { type HeldSocket, holdListenerSocket, listenOnHeldSocket, releaseHeldSocket } from "./held-listener.ts";
import { listenInherited } from "./inherited-listener.ts";
import { type BoundListener, bindListener } from "./listener.ts";
import { setListenerKeepAlive } from "./listener-keepalive.ts";
import type { Logger } from "./logger.ts";
import { RateLimitedLog } from "./rate-limited-log.ts";
import type { InheritedSocket } from "./socket-activation.ts";
import { canonicalAddress } from "./socket-table.ts";

/**
 * The bound listeners of a server, and the guard that stops them while the process is
 * short of file descriptors and binds them again once descriptors are free.
 *
 * The set owns its listeners: `stop` stops every one, and a listener bound again after a
 * pause replaces the stopped one in `listeners`.
 *
 * A listen address with a socket from the service manager (socket activation) accepts on that
 * socket instead of binding one (see `listenInherited`).
 */
export class ListenerSet<Data> {
  readonly #log: Logger;
  readonly #reusePort: boolean;
  readonly #descriptorError: RateLimitedLog;
  readonly #rebindError: RateLimitedLog;
  /** Sockets the service manager passed, by canonical listen address. */
  readonly #inherited: ReadonlyMap<string, InheritedSocket>;
  readonly #controlServers: number;
  #listeners: BoundListener[] = [];
  #handlers: SocketHandler<Data> | undefined;
  #descriptors: DescriptorBudget | undefined;
  #acceptPaused = false;
  /** Sockets of the stopped listeners kept open during a pause, by listener (see `HeldSocket`). */
  #held = new Map<BoundListener, HeldSocket>();
  #resumeTimer: Timer | undefined;
  #keepaliveMs = 0;
  #keepaliveInherited = false;
  /** Times the listeners were stopped because the descriptor limit was nearly reached. */
  acceptPauses = 0;

  /**
   * @param log the server's logger, which gets the set's lines on binds, pauses and resumes.
   * @param reusePort bind TCP listeners with SO_REUSEPORT (see `bindListener`).
   * @param inherited sockets the service manager passed, each for the listen address it matched.
   * @param controlServers how many of the admin API and the metrics server run, whose connection caps the guard holds back.
   */
  constructor(log: Logger, reusePort: boolean, inherited: readonly InheritedSocket[] = [], controlServers = 0) {
    this.#log = log;
    this.#reusePort = reusePort;
    this.#inherited = new Map(inherited.map((socket) => [socket.key, socket]));
    this.#controlServers = controlServers;
    this.#descriptorError = new RateLimitedLog(this.#log, "error", 10_000);
    this.#rebindError = new RateLimitedLog(this.#log, "error", 10_000);
  }

  /** Bound listeners, with the real ports. */
  get listeners(): readonly BoundListener[] {
    return this.#listeners;
  }

  /**
   * True when every bound TCP listener carries the keepalive setting of `setKeepAlive`, so its
   * accepted sockets inherit it and need no setsockopt(2) calls of their own.
   */
  get keepaliveInherited(): boolean {
    return this.#keepaliveInherited;
  }

  /**
   * Sets TCP keepalive on the TCP listeners bound now and later, for clients accepted from then
   * on (see `setListenerKeepAlive`). `keepaliveInherited` reports whether it took effect.
   */
  setKeepAlive(keepaliveMs: number): void {
    this.#keepaliveMs = keepaliveMs;
    if (this.#acceptPaused) {
      // The stopped listeners' descriptors are closed, and their numbers may belong to other
      // sockets by now. The listeners started after the pause get the setting.
      return;
    }
    this.#keepaliveInherited = this.#listeners.every((listener) => this.#applyKeepAlive(listener));
  }

  /** True while the listeners are stopped because the descriptor limit is nearly reached. */
  get acceptPaused(): boolean {
    return this.#acceptPaused;
  }

  /**
   * Binds a listener on every address, in order. On a failure the listeners bound so far are stopped.
   *
   * @throws {ListenError} naming the address that could not be bound.
   */
  async bind(addresses: readonly Address[], handlers: SocketHandler<Data>): Promise<void> {
    this.#handlers = handlers;
    this.#keepaliveInherited = true;
    try {
      for (const address of addresses) {
        const listener = await this.#open(address, handlers);
        // Before any await, so that no client is accepted without the listener's keepalive.
        this.#keepaliveInherited = this.#applyKeepAlive(listener) && this.#keepaliveInherited;
        this.#listeners.push(listener);
        this.#log.info("listening", { listener: listener.name, ...inheritedFields(listener) });
      }
    } catch (error) {
      this.stop();
      throw error;
    }
    this.#descriptors = DescriptorBudget.ofProcess(this.#controlServers);
  }

  /** Stops every listener and cancels a pending bind after a pause. Open connections carry on. */
  stop(): void {
    clearTimeout(this.#resumeTimer);
    this.#acceptPaused = false;
    for (const listener of this.#listeners) {
      listener.stop();
    }
    this.#listeners = [];
    this.#releaseHeld();
  }

  /**
   * Stops the listeners while fewer descriptors are free than the budget's reserve, because
   * at the descriptor limit Bun's listener retries the failing accept(2) in a busy loop.
   * Open connections carry on; a timer starts the listeners again once descriptors are free.
   * A TCP listener's socket stays open meanwhile (see `HeldSocket`), so new clients wait in its
   * backlog and the port stays tinylb's.
   * NOTE: a Unix socket listener, or a TCP one whose descriptor could not be duplicated, is
   * closed instead. Its new clients fail to connect (a Unix listener's socket file is removed),
   * and those in its backlog are reset. Another process may take its address meanwhile, so
   * binding it again retries with back-off.
   *
   * @param active connections open or dialing, counting the client just accepted.
   * @param now `performance.now()` at the accept, so that the check reads no clock of its own.
   */
  guardDescriptors(active: number, now?: number): void {
    const budget = this.#descriptors;
    if (budget === undefined || this.#acceptPaused || this.#listeners.length === 0 || !budget.exhausted(active, now)) {
      return;
    }

    this.#acceptPaused = true;
    this.acceptPauses++;
    for (const listener of this.#listeners) {
      const held = holdListenerSocket(listener);
      if (held !== undefined) {
        this.#held.set(listener, held);
      }
      listener.stop();
    }
    this.#descriptorError.log("file descriptor limit nearly reached; stopped accepting clients until descriptors are free; raise ulimit -n (LimitNOFILE= under systemd), or cap clients below the limit with --max-connections", {
      limit: budget.limit,
      reserve: budget.reserve,
      ...(budget.controlCaps > 0 ? { adminAndMetricsCaps: budget.controlCaps } : {}),
      open: active,
    });
    this.#scheduleResume(100);
  }

  /** Accepts on the passed socket of `address`, or binds one when the service manager passed none. */
  async #open(address: Address, handlers: SocketHandler<Data>): Promise<BoundListener> {
    const inherited = this.#inherited.get(canonicalAddress(address));
    if (inherited !== undefined) {
      return listenInherited(inherited, handlers);
    }

    return await bindListener(address, handlers, { reusePort: this.#reusePort });
  }

  /** Accepts again on the held socket of a stopped listener, or binds its address again when none is held or accepting on it failed. */
  async #reopen(listener: BoundListener, handlers: SocketHandler<Data>): Promise<BoundListener> {
    const held = this.#held.get(listener);
    if (held === undefined) {
      return await this.#open(listener.address, handlers);
    }

    this.#held.delete(listener);
    try {
      return listenOnHeldSocket(held, handlers);
    } catch (error) {
      this.#log.warn("accepting on the held listener socket failed; binding the address again", { listener: listener.name, err: error });

      return await this.#open(listener.address, handlers);
    }
  }

  #releaseHeld(): void {
    for (const held of this.#held.values()) {
      releaseHeldSocket(held);
    }
    this.#held.clear();
  }

  /** Sets keepalive on a TCP listener; returns false when it failed. Unix listeners need none. */
  #applyKeepAlive(listener: BoundListener): boolean {
    if (listener.address.kind !== "tcp") {
      return true;
    }

    const applied = listener.fd !== undefined && setListenerKeepAlive(listener.fd, this.#keepaliveMs);
    if (!applied) {
      this.#log.debug("setting keepalive on the listener failed; setting it on each accepted socket instead", { listener: listener.name });
    }

    return applied;
  }

  #scheduleResume(delayMs: number): void {
    this.#resumeTimer = setTimeout(() => void this.#resumeAccepting(delayMs), delayMs);
  }

  /** Starts the stopped listeners again, on their held sockets or bound addresses, or backs off (up to 2 s) while descriptors are short. */
  async #resumeAccepting(delayMs: number): Promise<void> {
    this.#resumeTimer = undefined;
    const nextDelayMs = Math.min(2 * delayMs, 2000);
    if (!this.#acceptPaused || this.#handlers === undefined) {
      return;
    }
    if (!this.#descriptors!.recovered()) {
      this.#scheduleResume(nextDelayMs);

      return;
    }

    const stopped = this.#listeners;
    const bound: BoundListener[] = [];
    let keepaliveInherited = true;
    try {
      for (const listener of stopped) {
        const rebound = await this.#reopen(listener, this.#handlers);
        keepaliveInherited = this.#applyKeepAlive(rebound) && keepaliveInherited;
        bound.push(rebound);
      }
    } catch (error) {
      // The listeners started so far stop until the next try, and keep their sockets held, so
      // that their ports stay open while another address fails to bind.
      for (const [index, listener] of bound.entries()) {
        const held = holdListenerSocket(listener);
        if (held !== undefined) {
          this.#held.set(stopped[index]!, { listener: stopped[index]!, fd: held.fd });
        }
        listener.stop();
      }
      this.#rebindError.log("binding the listeners again failed; retrying", { err: error, retryMs: nextDelayMs });
      this.#scheduleResume(nextDelayMs);

      return;
    }
    if (!this.#acceptPaused || this.#listeners !== stopped) {
      // stop() ran while binding: the balancer is shutting down.
      for (const listener of bound) {
        listener.stop();
      }

      return;
    }

    this.#listeners = bound;
    this.#keepaliveInherited = keepaliveInherited;
    this.#acceptPaused = false;
    this.#log.info("file descriptors are free again; accepting clients", { listeners: bound.map((listener) => listener.name).join(",") });
  }
}

/** Log fields of a listener on a socket the service manager passed; none for one it bound. */
function inheritedFields(listener: BoundListener): { inheritedFd?: number; fdName?: string } {
  const socket = listener.inherited;
  if (socket === undefined) {
    return {};
  }

  return socket.fdName === undefined ? { inheritedFd: socket.fd } : { inheritedFd: socket.fd, fdName: socket.fdName };
}
