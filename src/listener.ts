import { isIP } from "node:net";
import { lstatSync, unlinkSync } from "node:fs";
import type { Socket, SocketHandler, SocketListener, TCPSocketListener, TCPSocketListenOptions } from "bun";
import { type Address, formatAddress, type TcpAddress } from "./address.ts";
import { unprivilegedPortStart } from "./bind-permission.ts";
import type { InheritedSocket } from "./socket-activation.ts";
import { outgoingPortHint } from "./port-holder.ts";
import { setSocketOption, SOL_SOCKET } from "./socket-options.ts";
import { socketPathProblem, unixListenErrorHint } from "./socket-path.ts";

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
  /**
   * The listening socket's file descriptor, for socket options that accepted sockets inherit;
   * undefined for Unix sockets. Bun 1.4.4 has `fd` on a listener but does not declare it.
   */
  readonly fd?: number;
  /** The service manager's socket that the listener accepts on, instead of one it bound (socket activation). */
  readonly inherited?: InheritedSocket;
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
 * of one balancer share it. The main thread's first bind of the address fails first when
 * another process is bound to it (see probeExclusiveBind), but a process that sets
 * SO_REUSEPORT and binds later can still join.
 *
 * @throws {ListenError} when the address cannot be bound.
 */
export async function bindListener<Data>(address: Address, handlers: SocketHandler<Data>, options: BindOptions = {}): Promise<BoundListener> {
  const name = formatAddress(address);
  try {
    if (address.kind === "unix") {
      checkSocketPathLength(address.path);
      await removeStaleSocket(address.path);
      const listener = Bun.listen<Data>({ unix: address.path, allowHalfOpen: true, socket: handlers });

      return { address, name, stop: () => stopListener(listener) };
    }

    const reusePort = options.reusePort === true;
    const listener = reusePort && mustCheckExclusive(name) ? listenExclusiveThenShare(address, handlers) : listenTcp(address, address.port, handlers, reusePort);
    const bound: Address = { kind: "tcp", host: address.host, port: listener.port };

    if (reusePort) {
      reusedPortNames.add(formatAddress(bound));
    }
    const fd = (listener as { fd?: unknown }).fd;

    return { address: bound, name: formatAddress(bound), fd: typeof fd === "number" ? fd : undefined, stop: () => stopListener(listener) };
  } catch (error) {
    if (error instanceof ListenError) {
      throw error;
    }
    throw new ListenError(`listen on ${name} failed: ${describeListenError(error, address)}`, { cause: error });
  }
}

/** Addresses, with their bound ports, that this thread has bound with SO_REUSEPORT before. */
const reusedPortNames = new Set<string>();

/** `SO_REUSEPORT` from Linux's <asm-generic/socket.h>. */
const SO_REUSEPORT = 15;

/**
 * Tells whether a bind with SO_REUSEPORT must first check that no other process is bound to
 * the address. Only the main thread checks, on its first bind of the address. Relay workers
 * join the port the main thread is bound to, and so does the main thread when it binds again
 * after a descriptor-guard pause, so both binds would fail an exclusive check.
 */
function mustCheckExclusive(name: string): boolean {
  return Bun.isMainThread && !reusedPortNames.has(name);
}

function listenTcp<Data>(address: TcpAddress, port: number, handlers: SocketHandler<Data>, reusePort: boolean): TCPSocketListener<Data> {
  // bun-types 1.4.4 declares reusePort on connect options only, but Bun.listen applies it
  // (test/workers.test.ts shares one port between threads).
  const listenOptions: TCPSocketListenOptions<Data> & { reusePort: boolean } = {
    hostname: address.host,
    port,
    exclusive: !reusePort,
    reusePort,
    allowHalfOpen: true,
    socket: handlers,
  };

  return Bun.listen<Data>(listenOptions);
}

/**
 * Binds a TCP address without SO_REUSEPORT, so that an address another process is bound to
 * fails with EADDRINUSE, as a bind with one worker does, even when that process set
 * SO_REUSEPORT. Then it sets SO_REUSEPORT on the listening socket, which lets the relay
 * workers' listeners join it: Linux checks the option of the sockets already bound when
 * another binds.
 *
 * Without setsockopt(2) (no C library), the exclusive listener is closed again and the address
 * bound with SO_REUSEPORT at once.
 * NOTE: in that fallback, a client that connects in the moment between the two binds is
 * reset or left hanging by the closed listener. A process that binds the port with
 * SO_REUSEPORT later still shares it either way: the kernel offers no way to refuse it.
 */
function listenExclusiveThenShare<Data>(address: TcpAddress, handlers: SocketHandler<Data>): TCPSocketListener<Data> {
  const exclusive = listenTcp(address, address.port, handlers, false);
  const fd = (exclusive as { fd?: unknown }).fd;
  if (typeof fd === "number" && setSocketOption(fd, SOL_SOCKET, SO_REUSEPORT, 1)) {
    return exclusive;
  }

  const port = exclusive.port;
  // stop(true) closes the socket before it returns (strace shows close() right after listen()
  // with Bun 1.4.4), so the SO_REUSEPORT bind that follows does not clash with it.
  exclusive.stop(true);

  return listenTcp(address, port, handlers, true);
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
    throw new ListenError(`listen on unix:${path} failed: a listener already accepts on it (EADDRINUSE), such as another tinylb; stop it or pick another path`);
  }
  unlinkSync(path);
}

/** Settings parse listen addresses with the same check, so this catches only an address made in code. */
function checkSocketPathLength(path: string): void {
  const problem = socketPathProblem(path);
  if (problem !== undefined) {
    throw new ListenError(`listen on unix:${path} failed: ${problem}`);
  }
}

/** Describes a failed bind with its cause and the fix, from the errno code Bun attaches. */
export function describeListenError(error: unknown, address: Address): string {
  const code = (error as { code?: unknown })?.code;
  const hint = typeof code === "string" ? listenErrorHint(code, address) : undefined;
  if (hint !== undefined) {
    return `${hint} (${code})`;
  }

  const message = error instanceof Error ? error.message : String(error);
  // Bun 1.4.4 gives a failed name lookup no error code, only "Failed to listen at NAME".
  if (code === undefined && address.kind === "tcp" && isIP(address.host) === 0) {
    return `${message}: the host name did not resolve to an address of this machine; use an IP address such as 127.0.0.1, or a name in /etc/hosts`;
  }

  return message;
}

function listenErrorHint(code: string, address: Address): string | undefined {
  if (address.kind === "unix") {
    const hint = unixListenErrorHint(code, address.path);
    if (hint !== undefined) {
      return hint;
    }
  }
  switch (code) {
    case "EADDRINUSE":
      // Settings reject clashes between this process's own listen and admin addresses before any
      // bind, so the holder is most likely another process. The message still does not claim it.
      return (
        (address.kind === "tcp" ? outgoingPortHint(address.port) : undefined) ?? "the address is already in use, such as by another tinylb; stop that listener or pick another address"
      );
    case "EACCES":
      return `permission denied; ports below ${unprivilegedPortStart()} need root or CAP_NET_BIND_SERVICE`;
    case "EADDRNOTAVAIL":
      return "no interface of this machine has this address; use one of its addresses, 127.0.0.1, or 0.0.0.0 or [::] for every interface";
    case "EINVAL":
      return address.kind === "tcp" && /^fe[89ab]/i.test(address.host) && !address.host.includes("%")
        ? `a link-local IPv6 address needs its interface, as in [${address.host}%eth0]:${address.port}`
        : "the address cannot be bound on this machine";
  }

  return undefined;
}
