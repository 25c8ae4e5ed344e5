import { formatAddress, isUnspecified } from "./address.ts";
import type { RelaySocket } from "./flow.ts";
import type { BoundListener } from "./listener.ts";

/**
 * Returns the name of the listener that accepted a client socket, such as `0.0.0.0:7443`, for
 * debug lines. The listeners share one set of socket handlers, so the socket's local address
 * picks it: the only TCP listener on that port, else the one bound to that exact address, else
 * a wildcard one. A client of a Unix listener gets the only Unix listener's name, because Bun
 * 1.4.4 reports no local address for Unix sockets. On an accepted socket, Bun 1.4.4 reads the
 * local address and port with two getsockname(2) calls (seen with strace), so only debug
 * lines call this.
 *
 * @returns the listener's name, or the socket's local address (`unix` for a Unix socket) when
 *   no listener matches.
 */
export function acceptingListenerName(listeners: readonly BoundListener[], socket: RelaySocket): string {
  const host = socket.localAddress;
  if (host === undefined || host === "") {
    const unixListeners = listeners.filter((listener) => listener.address.kind === "unix");

    return unixListeners.length === 1 ? unixListeners[0]!.name : "unix";
  }

  const local = formatAddress({ kind: "tcp", host, port: socket.localPort });
  const onPort = listeners.filter((listener) => listener.address.kind === "tcp" && listener.address.port === socket.localPort);
  if (onPort.length === 1) {
    return onPort[0]!.name;
  }
  const exact = onPort.find((listener) => listener.name === local);
  const wildcard = onPort.find((listener) => listener.address.kind === "tcp" && isUnspecified(listener.address.host));

  return (exact ?? wildcard)?.name ?? local;
}

/** Returns the local address of a backend socket as `ip:port`, the pair `ss` shows on tinylb's side of it, or `unix` for a Unix socket. */
export function socketLocalAddress(socket: RelaySocket): string {
  const host = socket.localAddress;

  return host === undefined || host === "" ? "unix" : formatAddress({ kind: "tcp", host, port: socket.localPort });
}
