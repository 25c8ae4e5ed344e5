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
 * garbage collection freed them. The batch is kept in arrays rather than a Map for the same
 * reason: a Map keeps what was deleted from it until a full collection (see SlotList).
 *
 * Client sockets need none of this: they inherit keepalive from their listener.
 */
export class DeferredKeepalive {
  /** Idle milliseconds before probes start, for batches started from now on; 0 turns keepalive off. */
  keepaliveMs: number;
  /** Backend sockets waiting for the batch, with an undefined hole for each connection deleted since. */
  #sockets: (Socket<unknown> | undefined)[] = [];
  /** The connection of each entry of `#sockets`, at the same index. */
  #owners: (object | undefined)[] = [];
  #timer: Timer | undefined;
  #batchKeepaliveMs = 0;

  constructor(keepaliveMs: number) {
    this.keepaliveMs = keepaliveMs;
  }

  /**
   * Queues a connected TCP backend socket of `connection`, which gets keepalive unless `delete`
   * removes the connection first. The batch records the socket's index in the connection's
   * `keepaliveSlot` property.
   */
  add(socket: Socket<unknown>, connection: object): void {
    if (this.keepaliveMs <= 0) {
      return;
    }
    if (this.#timer === undefined) {
      this.#batchKeepaliveMs = this.keepaliveMs;
      this.#timer = setTimeout(() => this.#apply(), Math.min(KEEPALIVE_DELAY_MS, this.keepaliveMs));
      this.#timer.unref();
    }
    (connection as KeepaliveOwner).keepaliveSlot = this.#sockets.length;
    this.#sockets.push(socket);
    this.#owners.push(connection);
  }

  /** Removes a connection that closed, so the batch neither keeps it in memory nor touches its socket. */
  delete(connection: object): void {
    const owner = connection as KeepaliveOwner;
    const slot = owner.keepaliveSlot ?? -1;
    // The slot may be from an earlier batch, so it counts only when this batch has the connection there.
    if (slot >= 0 && this.#owners[slot] === connection) {
      this.#sockets[slot] = undefined;
      this.#owners[slot] = undefined;
    }
    owner.keepaliveSlot = -1;
  }

  /** Drops the queued sockets and stops the timer. */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#sockets = [];
    this.#owners = [];
  }

  #apply(): void {
    const sockets = this.#sockets;
    const keepaliveMs = this.#batchKeepaliveMs;
    this.stop();
    for (const socket of sockets) {
      if (socket !== undefined) {
        configureSocket(socket, keepaliveMs);
      }
    }
  }
}

/** The property DeferredKeepalive writes on a queued socket's connection, which is the socket's index in the batch or -1. */
interface KeepaliveOwner {
  keepaliveSlot?: number;
}
