import { readFileSync } from "node:fs";

/** The socket tables of this network namespace, one line per socket. */
const SOCKET_TABLES = ["/proc/net/tcp", "/proc/net/tcp6"];

/** State of a listening socket in the socket tables. */
const LISTEN_STATE = "0A";

/**
 * Explains a TCP bind that failed with EADDRINUSE while no socket listens on `port`: an
 * outgoing connection uses it as its local port, which happens only in the kernel's range of
 * such ports. Returns undefined when a socket listens there, when the port is outside that
 * range, or when /proc cannot be read.
 */
export function outgoingPortHint(port: number): string | undefined {
  const range = localPortRange();
  if (range === undefined || port < range[0] || port > range[1] || listensOn(port) !== false) {
    return undefined;
  }

  return `the address is already in use by an outgoing connection, since no socket listens on port ${port} and it is in the kernel's range for outgoing connections (net.ipv4.ip_local_port_range ${range[0]}-${range[1]}); pick a port outside that range`;
}

/** Returns the kernel's range of local ports for outgoing connections, or undefined when /proc cannot be read. */
function localPortRange(): [number, number] | undefined {
  try {
    const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);

    return low !== undefined && high !== undefined && Number.isInteger(low) && Number.isInteger(high) ? [low, high] : undefined;
  } catch {
    return undefined;
  }
}

/** Returns true when a TCP socket listens on `port` at any address, or undefined when the tables cannot be read. */
function listensOn(port: number): boolean | undefined {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  try {
    return SOCKET_TABLES.some((table) =>
      readFileSync(table, "utf8")
        .split("\n")
        .some((line) => {
          const fields = line.trim().split(/\s+/);

          return fields[3] === LISTEN_STATE && fields[1]?.endsWith(`:${hexPort}`) === true;
        }),
    );
  } catch {
    return undefined;
  }
}
