import type { SocketHandler, SocketListener } from "bun";
import { duplicateDescriptor, lastErrorCode, loadLibc } from "./libc.ts";
import { type BoundListener, ListenError } from "./listener.ts";
import { describePassed, type InheritedSocket } from "./socket-activation.ts";

/**
 * Accepts clients on a socket the service manager passed, through a duplicate of its
 * descriptor. Bun's `listener.stop()` closes the descriptor it listens on (strace with Bun
 * 1.4.4: epoll_ctl DEL, then close, and no shutdown), so stopping closes only the duplicate.
 * The passed descriptor stays open, so a descriptor-guard pause can accept on it again later.
 * Each relay worker accepts on a duplicate of its own. Clients that connect after a shutdown
 * stopped the listener wait in the socket's backlog for the next process.
 * NOTE: Bun calls listen(2) again on the descriptor, with a backlog of 511, which replaces
 * the socket unit's `Backlog=`.
 *
 * @throws {ListenError} when the descriptor cannot be duplicated or Bun cannot accept on it.
 */
export function listenInherited<Data>(socket: InheritedSocket, handlers: SocketHandler<Data>): BoundListener {
  const fd = duplicatePassedSocket(socket);
  let listener;
  try {
    listener = listenOnDescriptor(fd, handlers);
  } catch (error) {
    loadLibc()?.close(fd);
    throw new ListenError(`listen on ${socket.key} failed: accepting on ${describePassed(socket.fd, socket.fdName)} failed: ${(error as Error).message}`, { cause: error });
  }

  return {
    address: socket.address,
    name: socket.key,
    fd: socket.address.kind === "tcp" ? fd : undefined,
    inherited: socket,
    stop: () => listener.stop(false),
  };
}

/**
 * Accepts clients on the listening socket `fd`, which the returned listener owns: its `stop()`
 * closes `fd`. Bun 1.4.4 calls listen(2) on it again, with a backlog of 511.
 */
export function listenOnDescriptor<Data>(fd: number, handlers: SocketHandler<Data>): SocketListener<Data> {
  // Bun 1.4.4 accepts `fd` in Bun.listen, but bun-types does not declare it.
  const options = { fd, allowHalfOpen: true, socket: handlers } as unknown as Parameters<typeof Bun.listen<Data>>[0];

  return Bun.listen<Data>(options);
}

function duplicatePassedSocket(socket: InheritedSocket): number {
  const libc = loadLibc();
  if (libc === null) {
    throw new ListenError(`listen on ${socket.key} failed: accepting on ${describePassed(socket.fd, socket.fdName)} needs fcntl(2) from the C library, which could not be loaded`);
  }

  const fd = duplicateDescriptor(libc, socket.fd);
  if (fd < 0) {
    throw new ListenError(`listen on ${socket.key} failed: duplicating ${describePassed(socket.fd, socket.fdName)} failed (${lastErrorCode(libc)})`);
  }

  return fd;
}
