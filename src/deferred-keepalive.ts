import type { Socket } from "bun";
import { configureSocket } from "./dialer.ts";

/** Milliseconds after its connect that a backend socket gets keepalive, at most. */
export const KEEPALIVE_DELAY_MS = 1000;

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
 * A connection that closes must be removed with `delete`: a queued socket keeps its
 * connection's objects in memory until the batch. Holding the last second's connections made
 * the heap grow by thousands of connections under a high connection rate, until a full
 * garbage collection freed them.
 *
 * Client sockets need none of this: they inherit keepalive from their listener.
 */
export class DeferredKeepalive {
  /** Idle milliseconds before probes start, for batches started from now on; 0 turns keepalive off. */
  keepaliveMs: number;
  /** Backend sockets waiting for the batch, by the connection they belong to. */
  #waiting = new Map<object, Socket<unknown>>();
  #timer: Timer | undefined;
  #batchKeepaliveMs = 0;

  constructor(keepaliveMs: number) {
    this.keepaliveMs = keepaliveMs;
  }

  /** Queues a connected TCP backend socket of `connection`; it gets keepalive unless `delete` removes the connection first. */
  add(socket: Socket<unknown>, connection: object): void {
    if (this.keepaliveMs <= 0) {
      return;
    }
    if (this.#timer === undefined) {
      this.#batchKeepaliveMs = this.keepaliveMs;
      this.#timer = setTimeout(() => this.#apply(), Math.min(KEEPALIVE_DELAY_MS, this.keepaliveMs));
      this.#timer.unref();
    }
    this.#waiting.set(connection, socket);
  }

  /** Removes a connection that closed, so the batch neither keeps it in memory nor touches its socket. */
  delete(connection: object): void {
    this.#waiting.delete(connection);
  }

  /** Drops the queued sockets and stops the timer. */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#waiting = new Map();
  }

  #apply(): void {
    const waiting = this.#waiting;
    const keepaliveMs = this.#batchKeepaliveMs;
    this.stop();
    for (const socket of waiting.values()) {
      configureSocket(socket, keepaliveMs);
    }
  }
}
