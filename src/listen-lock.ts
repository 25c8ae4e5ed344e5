import { readFileSync } from "node:fs";
import type { SocketListener } from "bun";
import { type Address, formatAddress, parseAddress, type TcpAddress } from "./address.ts";
import { ListenError } from "./listener.ts";

const LOCK_PREFIX = "tinylb-listen:";

/**
 * Name of the lock of a TCP listen address: an abstract Unix socket (Linux), written
 * here without its leading NUL byte, as `/proc/net/unix` shows it after an `@`.
 */
export function listenLockName(address: Address): string {
  return `${LOCK_PREFIX}${formatAddress(address)}`;
}

/**
 * Locks that make binding a TCP listen address exclusive between tinylb processes, even
 * when the listeners themselves share the port with SO_REUSEPORT (`--workers`).
 *
 * Each lock is an abstract Unix socket named after the address. The kernel frees it when
 * the process ends, however it ends, so no stale lock is left behind, and its name space
 * follows the network namespace, as TCP ports do. The main thread takes the locks before
 * it binds its listeners and releases them when it stops its listeners at SIGTERM or SIGINT,
 * so a new tinylb can take the addresses while this one drains. A descriptor-guard pause
 * (see `ListenerSet.guardDescriptors`) stops the listeners but keeps the locks.
 *
 * A lock is named after the address as written, so `0.0.0.0:8080` and `127.0.0.1:8080` take
 * different locks, although Linux lets SO_REUSEPORT sockets of one user share that pair. So
 * before taking a lock, `acquire` also looks for a lock of another process on the same port
 * whose wildcard address covers this one, or that this wildcard address covers, in
 * `/proc/net/unix`.
 *
 * NOTE: a host name and its IP address (`localhost:8080` and `127.0.0.1:8080`) still take
 * locks that do not clash, and two balancers that start at the same moment can both pass
 * the wildcard check. Without `--workers` the exclusive bind rejects both cases anyway.
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
        const overlapping = findOverlappingLock(address, this.#held);
        if (overlapping !== undefined) {
          throw new ListenError(
            `listen on ${formatAddress(address)} failed: another tinylb listens on ${formatAddress(overlapping)}, which shares the port with this address; stop it or pick another address (EADDRINUSE)`,
          );
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

/**
 * Returns the address of a lock held by another process (not in `own`) on the port of
 * `address`, where either address is a wildcard that covers the other. Returns undefined
 * when `/proc/self/net/unix` cannot be read.
 */
function findOverlappingLock(address: TcpAddress, own: ReadonlyMap<string, unknown>): TcpAddress | undefined {
  let table: string;
  try {
    // /proc/self/net, because systemd's ProcSubset=pid (in the example unit) hides /proc/net.
    table = readFileSync("/proc/self/net/unix", "utf8");
  } catch {
    return undefined;
  }

  for (const line of table.split("\n")) {
    const at = line.indexOf(`@${LOCK_PREFIX}`);
    if (at < 0) {
      continue;
    }
    const name = line.slice(at + 1).trim();
    if (own.has(name)) {
      continue;
    }
    let other: Address;
    try {
      other = parseAddress(name.slice(LOCK_PREFIX.length));
    } catch {
      continue;
    }
    if (other.kind === "tcp" && other.port === address.port && (covers(other, address) || covers(address, other))) {
      return other;
    }
  }

  return undefined;
}

/**
 * Returns true when a listener on `wildcard` also receives clients of `other`: `[::]` covers
 * IPv4 and IPv6 addresses (dual-stack, the Linux default), `0.0.0.0` covers IPv4 ones.
 */
function covers(wildcard: TcpAddress, other: TcpAddress): boolean {
  if (wildcard.host === "::") {
    return true;
  }

  return wildcard.host === "0.0.0.0" && !other.host.includes(":");
}
