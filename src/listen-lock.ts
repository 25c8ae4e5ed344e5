import type { SocketListener } from "bun";
import { type Address, formatAddress } from "./address.ts";
import { ListenError } from "./listener.ts";

/**
 * Name of the lock of a TCP listen address: an abstract Unix socket (Linux), written
 * here without its leading NUL byte, as `/proc/net/unix` shows it after an `@`.
 */
export function listenLockName(address: Address): string {
  return `tinylb-listen:${formatAddress(address)}`;
}

/**
 * Locks that make binding a TCP listen address exclusive between tinylb processes, even
 * when the listeners themselves share the port with SO_REUSEPORT (`--workers`).
 *
 * Each lock is an abstract Unix socket named after the address. The kernel frees it when
 * the process ends, however it ends, so no stale lock is left behind, and its name space
 * follows the network namespace, as TCP ports do. The main thread takes the locks before
 * it binds its listeners and holds them until it exits.
 *
 * NOTE: the name is the address as written, so `0.0.0.0:8080` and `127.0.0.1:8080`, or a
 * host name and its IP address, take different locks. Two `--workers` balancers on such a
 * pair can still share the port, because Linux lets SO_REUSEPORT sockets of one user
 * overlap a wildcard address. Without `--workers` the exclusive bind rejects that overlap.
 */
export class ListenLocks {
  readonly #held = new Map<string, SocketListener<undefined>>();

  /**
   * Takes the lock of every TCP address in `addresses` with a fixed port, skipping locks
   * this process holds already. Port 0 is skipped, because the kernel picks a free port;
   * lock the bound address afterwards.
   *
   * @throws {ListenError} when another process holds one of the locks; locks taken by this call are released.
   */
  acquire(addresses: readonly Address[]): void {
    const acquired: string[] = [];
    try {
      for (const address of addresses) {
        if (address.kind !== "tcp" || address.port === 0) {
          continue;
        }
        const name = listenLockName(address);
        if (this.#held.has(name)) {
          continue;
        }
        this.#held.set(name, bindLock(address, name));
        acquired.push(name);
      }
    } catch (error) {
      for (const name of acquired) {
        this.#release(name);
      }
      throw error;
    }
  }

  /** Releases every lock; another tinylb may then bind the addresses. */
  release(): void {
    for (const name of [...this.#held.keys()]) {
      this.#release(name);
    }
  }

  #release(name: string): void {
    this.#held.get(name)?.stop(true);
    this.#held.delete(name);
  }
}

function bindLock(address: Address, name: string): SocketListener<undefined> {
  try {
    // Nothing needs to connect to the lock; a client that does is closed at once.
    return Bun.listen<undefined>({ unix: `\0${name}`, socket: { open: (socket) => void socket.end(), data() {} } });
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === "EADDRINUSE") {
      throw new ListenError(
        `listen on ${formatAddress(address)} failed: the address is already in use by another tinylb, which holds the lock @${name}; stop that tinylb or pick another address (EADDRINUSE)`,
        { cause: error },
      );
    }
    throw new ListenError(`listen on ${formatAddress(address)} failed: taking the lock @${name} failed: ${(error as Error).message}`, { cause: error });
  }
}
