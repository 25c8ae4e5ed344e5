import { lstatSync, unlinkSync } from "node:fs";
import type { Socket, SocketHandler, SocketListener, TCPSocketListenOptions } from "bun";
import { type Address, formatAddress } from "./address.ts";

/** A listener that could not be bound, naming the address and the reason. */
export class ListenError extends Error {
  override name = "ListenError";
}

/** Options of `bindListener`. */
export interface BindOptions {
  /**
   * Bind a TCP address with SO_REUSEPORT so several listeners of this process share it.
   * @default false
   */
  reusePort?: boolean;
}

/** A bound listener and the address it is reachable at (with the real port when 0 was asked). */
export interface BoundListener {
  readonly address: Address;
  /** Canonical address string, with the bound port. */
  readonly name: string;
  stop(): void;
}

/**
 * Binds a listener exclusively, so a second balancer on the same address fails
 * instead of sharing its connections.
 *
 * A Unix socket path left behind by a process that died is removed first; a path
 * that a live process still accepts on is an error.
 *
 * With `reusePort`, a TCP address is bound with SO_REUSEPORT instead, so the relay workers
 * of one balancer share it; any other process that sets SO_REUSEPORT could join them.
 *
 * @throws {ListenError} when the address cannot be bound.
 */
export async function bindListener<Data>(address: Address, handlers: SocketHandler<Data>, options: BindOptions = {}): Promise<BoundListener> {
  const name = formatAddress(address);
  try {
    if (address.kind === "unix") {
      await removeStaleSocket(address.path);
      const listener = Bun.listen<Data>({ unix: address.path, allowHalfOpen: true, socket: handlers });

      return { address, name, stop: () => stopListener(listener) };
    }

    // bun-types 1.4.4 declares reusePort on connect options only, but Bun.listen applies it
    // (test/workers.test.ts shares one port between threads).
    const listenOptions: TCPSocketListenOptions<Data> & { reusePort: boolean } = {
      hostname: address.host,
      port: address.port,
      exclusive: options.reusePort !== true,
      reusePort: options.reusePort === true,
      allowHalfOpen: true,
      socket: handlers,
    };
    const listener = Bun.listen<Data>(listenOptions);
    const bound: Address = { kind: "tcp", host: address.host, port: listener.port };

    return { address: bound, name: formatAddress(bound), stop: () => stopListener(listener) };
  } catch (error) {
    if (error instanceof ListenError) {
      throw error;
    }
    throw new ListenError(`listen on ${name} failed: ${describeListenError(error)}`, { cause: error });
  }
}

function stopListener(listener: SocketListener<unknown> | SocketListener<never>): void {
  // false: stop accepting, but leave accepted connections to the server's own shutdown.
  listener.stop(false);
}

/**
 * Removes a Unix socket path that no process accepts on any more.
 *
 * @throws {ListenError} when the path is not a socket or a live process accepts on it.
 */
export async function removeStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!isSocket) {
    throw new ListenError(`listen on unix:${path} failed: the path exists and is not a socket; remove it or pick another path`);
  }

  let live = false;
  try {
    const probe: Socket<undefined> = await Bun.connect({ unix: path, socket: { data() {} } });
    probe.end();
    live = true;
  } catch {
    // Nothing accepts on the path: a leftover from a process that died.
  }
  if (live) {
    throw new ListenError(`listen on unix:${path} failed: another process is accepting on it (EADDRINUSE)`);
  }
  unlinkSync(path);
}

function describeListenError(error: unknown): string {
  const code = (error as { code?: unknown })?.code;
  const hints: Record<string, string> = {
    EADDRINUSE: "the address is already in use by another process",
    EACCES: "permission denied; ports below 1024 need root or CAP_NET_BIND_SERVICE",
    EADDRNOTAVAIL: "no local interface has this address",
  };
  if (typeof code === "string" && hints[code] !== undefined) {
    return `${hints[code]} (${code})`;
  }

  return error instanceof Error ? error.message : String(error);
}
