import type { SocketHandler } from "bun";
import { listenOnDescriptor } from "./inherited-listener.ts";
import { duplicateDescriptor, loadLibc } from "./libc.ts";
import type { BoundListener } from "./listener.ts";

/**
 * The listening socket of a TCP listener that tinylb bound, kept open through a duplicate of its
 * descriptor while the listener is stopped for a descriptor-guard pause. Bun's `stop()` closes
 * only its own descriptor, so the socket stays in the LISTEN state: the port stays tinylb's,
 * and clients that connect meanwhile wait in the backlog, as with HAProxy, rather than get
 * "connection refused". Once the backlog is full, Linux drops further SYNs and clients retry.
 */
export interface HeldSocket {
  /** The stopped listener, whose address and name the listener on the held socket keeps. */
  readonly listener: BoundListener;
  readonly fd: number;
}

/**
 * Duplicates the descriptor of a TCP listener that tinylb bound, before the listener stops.
 * Returns undefined for a Unix listener, for a socket from the service manager, which stays
 * open anyway (see `listenInherited`), and when the duplicate fails. Such a listener is bound
 * again after the pause.
 */
export function holdListenerSocket(listener: BoundListener): HeldSocket | undefined {
  if (listener.address.kind !== "tcp" || listener.fd === undefined || listener.inherited !== undefined) {
    return undefined;
  }
  const libc = loadLibc();
  const fd = libc === null ? -1 : duplicateDescriptor(libc, listener.fd);

  return fd < 0 ? undefined : { listener, fd };
}

/**
 * Accepts on a held socket again. The new listener owns the held descriptor, which its `stop()` closes.
 *
 * @throws the error of Bun.listen, after the held descriptor is closed.
 */
export function listenOnHeldSocket<Data>(held: HeldSocket, handlers: SocketHandler<Data>): BoundListener {
  let listener;
  try {
    listener = listenOnDescriptor(held.fd, handlers);
  } catch (error) {
    releaseHeldSocket(held);
    throw error;
  }

  return { address: held.listener.address, name: held.listener.name, fd: held.fd, stop: () => listener.stop(false) };
}

/** Closes a held socket that no listener took over, which frees its port. */
export function releaseHeldSocket(held: HeldSocket): void {
  loadLibc()?.close(held.fd);
}
