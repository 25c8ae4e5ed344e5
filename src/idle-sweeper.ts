import type { Clock, ClockTimer } from "./clock.ts";
import type { Connection } from "./connection.ts";
import type { ConnectionPool } from "./connection-pool.ts";
import type { TrafficStats } from "./traffic-stats.ts";

/** The reason given to a connection closed by the idle timeout. */
export const IDLE_TIMEOUT_REASON = "idle timeout";

/**
 * Closes the open connections of one thread's pool that carried no byte in either direction
 * for the idle timeout.
 *
 * It sweeps the pool every quarter of the timeout and compares each connection's byte count
 * (both directions, as the kernel took them) with the count the previous sweep saw. A
 * connection whose count did not change since the sweep at time `t` has been idle at least
 * since `t`, so it is closed at the first sweep at or after `t + timeout`. It is therefore
 * closed after between the timeout and a quarter more of idle time. A peer that stops reading
 * counts as idle once the kernel's buffers toward it are full. Dialing connections are not in
 * the pool, so the connect timeout alone covers the dial.
 *
 * A sweep rather than a timer per socket: the relay path then pays nothing per chunk, because
 * the flows count bytes anyway. Bun's `socket.timeout()` would need both sockets' timers
 * combined, and in Bun 1.4.4 `timeout(1)` and `timeout(2)` on an idle socket both fired after
 * about 4 s (measured on loopback), too coarse for timeouts of a few seconds.
 */
export class IdleSweeper {
  readonly #pool: ConnectionPool<Connection>;
  readonly #stats: TrafficStats;
  readonly #clock: Clock;
  #timeoutMs = 0;
  #timer: ClockTimer | undefined;

  constructor(pool: ConnectionPool<Connection>, stats: TrafficStats, clock: Clock) {
    this.#pool = pool;
    this.#stats = stats;
    this.#clock = clock;
  }

  /** The idle timeout in milliseconds; 0 while it is off. */
  get timeoutMs(): number {
    return this.#timeoutMs;
  }

  /**
   * Sets the idle timeout of every open connection and of those accepted later; 0 turns it
   * off. Turning it on counts idle time from now. A change of a timeout that is on keeps
   * the idle time each connection has already spent, as the sweeps measured it.
   */
  setTimeout(timeoutMs: number): void {
    const wasOff = this.#timeoutMs === 0;
    this.#timeoutMs = timeoutMs;
    this.#timer?.cancel();
    this.#timer = undefined;
    if (timeoutMs === 0) {
      return;
    }

    if (wasOff) {
      this.#recordBaseline();
    }
    this.#schedule();
  }

  /** Stops sweeping, as at shutdown; `setTimeout` starts again. */
  stop(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#timeoutMs = 0;
  }

  /** Closes the connections idle for the timeout; returns how many it closed. */
  sweep(): number {
    const now = this.#clock.now();
    const idle: Connection[] = [];
    for (const connection of this.#pool.connections()) {
      const bytes = connection.bytesToBackend + connection.bytesToClient;
      if (bytes !== connection.idleSweepBytes) {
        connection.idleSweepBytes = bytes;
        connection.idleSweepActiveAt = now;
      } else if (now - connection.idleSweepActiveAt >= this.#timeoutMs) {
        idle.push(connection);
      }
    }

    // Closed after the loop, because a close removes the connection from the pool.
    for (const connection of idle) {
      this.#stats.idleClosed++;
      connection.close(IDLE_TIMEOUT_REASON);
    }

    return idle.length;
  }

  /** Counts every open connection as active now, so that a timeout turned on ignores the time before. */
  #recordBaseline(): void {
    const now = this.#clock.now();
    for (const connection of this.#pool.connections()) {
      connection.idleSweepBytes = connection.bytesToBackend + connection.bytesToClient;
      connection.idleSweepActiveAt = now;
    }
  }

  #schedule(): void {
    // Rounded up, so that four sweeps never add up to less than the timeout: a timer does not
    // fire before its delay (Bun 1.4.4's shortest gap for a 10 ms timer was 10.06 ms).
    const periodMs = Math.ceil(this.#timeoutMs / 4);
    this.#timer = this.#clock.setTimeout(() => {
      this.sweep();
      this.#schedule();
    }, periodMs);
  }
}
