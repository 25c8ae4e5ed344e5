import type { Socket } from "bun";
import { configureSocket } from "./dialer.ts";

/** Milliseconds after its connect that a backend socket gets keepalive, at most. */
export const KEEPALIVE_DELAY_MS = 1000;

/** The part of a connection that DeferredKeepalive reads. */
interface Closable {
  readonly closed: boolean;
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
 * Client sockets need none of this: they inherit keepalive from their listener.
 */
export class DeferredKeepalive {
  /** Idle milliseconds before probes start, for batches started from now on; 0 turns keepalive off. */
  keepaliveMs: number;
  #sockets: Socket<unknown>[] = [];
  #connections: Closable[] = [];
  #timer: Timer | undefined;
  #batchKeepaliveMs = 0;

  constructor(keepaliveMs: number) {
    this.keepaliveMs = keepaliveMs;
  }

  /** Queues a connected TCP backend socket of `connection`; it gets keepalive unless the connection closes first. */
  add(socket: Socket<unknown>, connection: Closable): void {
    if (this.keepaliveMs <= 0) {
      return;
    }
    if (this.#timer === undefined) {
      this.#batchKeepaliveMs = this.keepaliveMs;
      this.#timer = setTimeout(() => this.#apply(), Math.min(KEEPALIVE_DELAY_MS, this.keepaliveMs));
      this.#timer.unref();
    }
    this.#sockets.push(socket);
    this.#connections.push(connection);
  }

  /** Drops the queued sockets and stops the timer. */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#sockets = [];
    this.#connections = [];
  }

  #apply(): void {
    const sockets = this.#sockets;
    const connections = this.#connections;
    const keepaliveMs = this.#batchKeepaliveMs;
    this.stop();
    for (let index = 0; index < sockets.length; index++) {
      if (!connections[index]!.closed) {
        configureSocket(sockets[index]!, keepaliveMs);
      }
    }
  }
}
