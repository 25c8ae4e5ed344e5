/**
 * Socket activation: listening sockets that the service manager opened and passed to tinylb,
 * as systemd's sd_listen_fds(3) describes. When LISTEN_PID is this process's id, the
 * LISTEN_FDS descriptors from 3 on are listening sockets, optionally named by the
 * colon-separated LISTEN_FDNAMES. Each is matched to a listen address by its local address.
 *
 * The service manager keeps its own copy of each socket open across restarts of the service,
 * so clients that connect while no tinylb runs wait in the socket's backlog instead of being
 * refused.
 */
import { isIP } from "node:net";
import { type Address, formatAddress } from "./address.ts";
import { ConfigError } from "./config.ts";
import { type Logger, silentLogger } from "./logger.ts";
import { canonicalAddress, describeDescriptor, findSocket, type SocketInfo, socketInode } from "./socket-table.ts";

/** The first passed descriptor (SD_LISTEN_FDS_START). */
export const LISTEN_FDS_START = 3;

/** The environment variables of the protocol, which tinylb removes so that no child sees them. */
const ACTIVATION_VARIABLES = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] as const;

/** A listening socket that the service manager passed, and the listen address it serves. */
export interface InheritedSocket {
  /** The passed descriptor, which stays open for the life of the process. */
  fd: number;
  /** The socket's local address, as the socket tables show it. */
  address: Address;
  /** The address in canonical form (see `canonicalAddress`), which listen addresses are matched by. */
  key: string;
  /** The descriptor's name in LISTEN_FDNAMES (systemd's `FileDescriptorName=`), when one was passed. */
  fdName?: string;
}

/** Looks up what a descriptor is; the socket tables in production, a stub in tests. */
export type DescriptorLookup = (fd: number) => SocketInfo | undefined;

/**
 * Reads the sockets the service manager passed and removes LISTEN_PID, LISTEN_FDS and
 * LISTEN_FDNAMES from `env`, as sd_listen_fds(3) does with `unset_environment`, so that processes tinylb starts do not
 * take the sockets for their own. Returns no sockets when LISTEN_PID is unset or names another
 * process, which then was the one meant to receive them.
 *
 * A LISTEN_FDS that is not a whole number while LISTEN_PID is unset or names another process,
 * and a LISTEN_PID of this process without LISTEN_FDS, are logged as one warning each.
 *
 * @throws {ConfigError} when LISTEN_PID names this process and LISTEN_FDS is not a whole
 *   number, or a passed descriptor is not a listening TCP or Unix stream socket.
 */
export function takeInheritedSockets(
  env: Record<string, string | undefined> = process.env,
  pid = process.pid,
  lookup: DescriptorLookup = lookUpDescriptor,
  log: Logger = silentLogger,
): InheritedSocket[] {
  const listenPid = env.LISTEN_PID;
  const listenFds = env.LISTEN_FDS;
  const names = env.LISTEN_FDNAMES?.split(":");
  for (const name of ACTIVATION_VARIABLES) {
    delete env[name];
  }
  const ours = listenPid?.trim() === String(pid);
  const validCount = listenFds !== undefined && /^\d{1,4}$/.test(listenFds.trim());
  if (ours && listenFds === undefined) {
    log.warn("LISTEN_PID names this process but LISTEN_FDS is missing; binding every listen address", { listenPid });
  } else if (!ours && listenFds !== undefined && !validCount) {
    log.warn("invalid LISTEN_FDS; binding every listen address", { value: listenFds, listenPid: listenPid ?? "", err: "expected the number of passed sockets, a whole number" });
  }
  if (!ours || listenFds === undefined) {
    return [];
  }
  if (!validCount) {
    throw new ConfigError(`invalid LISTEN_FDS "${listenFds}": expected the number of passed sockets, a whole number`);
  }

  const sockets: InheritedSocket[] = [];
  const count = Number(listenFds);
  for (let index = 0; index < count; index++) {
    const fd = LISTEN_FDS_START + index;
    const fdName = names?.[index] || undefined;
    const address = listeningAddress(fd, fdName, lookup(fd));
    sockets.push({ fd, address, key: canonicalAddress(address), ...(fdName === undefined ? {} : { fdName }) });
  }

  return sockets;
}

/** Returns the local address of a passed socket that listens on a stream. @throws {ConfigError} otherwise. */
function listeningAddress(fd: number, fdName: string | undefined, socket: SocketInfo | undefined): Address {
  const passed = describePassed(fd, fdName);
  if (socket === undefined) {
    const open = describeDescriptor(fd);
    const kind = open.startsWith("socket:") ? `a socket of another kind (${open}), such as a UDP one` : `not a socket but ${open}`;
    throw new ConfigError(`${passed} is ${kind}; pass stream sockets only (ListenStream= in the socket unit)`);
  }
  if (socket.type !== "stream") {
    throw new ConfigError(`${passed} is a Unix ${socket.type} socket; pass stream sockets only (ListenStream= in the socket unit)`);
  }
  if (!socket.listening) {
    throw new ConfigError(`${passed} is a connected socket, not a listening one; set Accept=no in the socket unit`);
  }

  return socket.address;
}

/** Names a passed descriptor for messages, such as `the socket the service manager passed as fd 3 ("web")`. */
export function describePassed(fd: number, fdName?: string): string {
  return `the socket the service manager passed as fd ${fd}${fdName === undefined ? "" : ` ("${fdName}")`}`;
}

function lookUpDescriptor(fd: number): SocketInfo | undefined {
  const inode = socketInode(fd);

  return inode === undefined ? undefined : findSocket(inode);
}

/**
 * Pairs passed sockets with listen addresses by their canonical address. A listen address
 * without a socket is bound as usual. Returns the sockets, which all have a listen address.
 *
 * @throws {ConfigError} naming the socket's address and the fix, for a socket that matches no listen address.
 */
export function matchInheritedSockets(listen: readonly Address[], sockets: readonly InheritedSocket[]): InheritedSocket[] {
  const keys = new Set(listen.map(canonicalAddress));
  for (const socket of sockets) {
    if (!keys.has(socket.key)) {
      const unit = socket.address.kind === "unix" ? socket.address.path : socket.key;
      throw new ConfigError(
        `${describePassed(socket.fd, socket.fdName)} listens on ${socket.key}, but no listen address is ${socket.key}${hostNameHint(listen, socket)}; add it to listen (--listen ${socket.key}), or remove ListenStream=${unit} from the socket unit`,
      );
    }
  }

  return [...sockets];
}

/**
 * Returns a hint when a listen address with a host name, such as `localhost:7443`, has the port
 * of a passed TCP socket, or else "". Listen addresses are matched by IP address and never
 * resolved, so such a name matches no socket.
 */
function hostNameHint(listen: readonly Address[], socket: InheritedSocket): string {
  if (socket.address.kind !== "tcp") {
    return "";
  }
  const port = socket.address.port;
  const named = listen.find((address) => address.kind === "tcp" && address.port === port && address.host !== "*" && isIP(address.host) === 0);
  if (named === undefined) {
    return "";
  }

  return ` (${formatAddress(named)} is a host name, and listen addresses are matched with passed sockets by IP address, so write ${socket.key} in place of it)`;
}
