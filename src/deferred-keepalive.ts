import type { Socket } from "bun";
import { configureSocket } from "./dialer.ts";

/** Milliseconds after its connect that a backend socket gets keepalive, at most. */
export const KEEPALIVE_DELAY_MS = 1000;

/** The part of an open connection that DeferredKeepalive reads and writes. */
export interface KeepaliveCandidate {
  /** The connected backend socket when it is a TCP socket, else null. */
  readonly tcpBackendSocket: Socket<unknown> | null;
  /** True once a batch has handled the backend socket, or when it needs no batch. Only DeferredKeepalive writes it. */
  backendKeepaliveDone: boolean;
}

/**
 * Turns on TCP keepalive for backend sockets in batches, up to `KEEPALIVE_DELAY_MS` after
 * they connect, rather than at once.
 *
 * Bun 1.4.4's `setKeepAlive(true, ms)` makes four setsockopt(2) calls, and a socket's options
 * cannot be set before `Bun.connect` opens it. A connection that ends within the delay, like
 * most short requests, never pays for them. Keepalive only matters on a connection idle for
 * the keepalive time, and the delay is at most that time, so a dead peer is noticed at most
 * one delay later than with keepalive set at once.
 *
 * A batch walks the connections open at that moment, which `openConnections` returns, and
 * handles those it has not handled before. So the batch keeps no connection in memory, and a
 * connection costs it nothing at its close. Each batch is linear in the open connections, and a
 * batch runs only after a TCP backend socket connected.
 *
 * Client sockets need none of this: they inherit keepalive from their listener.
 */
export class DeferredKeepalive {
  /** Idle milliseconds before probes start, for batches started from now on; 0 turns keepalive off. */
  keepaliveMs: number;
  readonly #openConnections: () => Iterable<KeepaliveCandidate>;
  #timer: Timer | undefined;
  #batchKeepaliveMs = 0;

  constructor(keepaliveMs: number, openConnections: () => Iterable<KeepaliveCandidate>) {
    this.keepaliveMs = keepaliveMs;
    this.#openConnections = openConnections;
  }

  /**
   * Schedules a batch for a connection whose TCP backend socket has just connected. The
   * connection must be among the open connections by the time the batch runs. While keepalive
   * is off, the connection is marked handled instead, so that later batches leave it alone.
   */
  add(connection: KeepaliveCandidate): void {
    if (this.keepaliveMs <= 0) {
      connection.backendKeepaliveDone = true;

      return;
    }
    if (this.#timer === undefined) {
      this.#batchKeepaliveMs = this.keepaliveMs;
      this.#timer = setTimeout(() => this.#apply(), Math.min(KEEPALIVE_DELAY_MS, this.keepaliveMs));
      this.#timer.unref();
    }
  }

  /** Stops the timer, so that no batch runs until the next `add`. */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #apply(): void {
    const keepaliveMs = this.#batchKeepaliveMs;
    this.stop();
    for (const connection of this.#openConnections()) {
      if (connection.backendKeepaliveDone) {
        continue;
      }
      connection.backendKeepaliveDone = true;
      const socket = connection.tcpBackendSocket;
      if (socket !== null) {
        configureSocket(socket, keepaliveMs);
      }
    }
  }
}
