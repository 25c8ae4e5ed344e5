/**
 * Local addresses of this process's sockets, looked up by socket inode in the kernel's socket
 * tables (`/proc/self/net/tcp`, `tcp6` and `unix`), for descriptors that another process
 * opened and passed on, such as the service manager's listening sockets.
 *
 * The tables are read through /proc/self/net rather than /proc/net, because systemd's
 * `ProcSubset=pid` hides /proc/net but keeps the process's own folder.
 */
import { readFileSync, readlinkSync } from "node:fs";
import { endianness } from "node:os";
import { type Address, formatAddress } from "./address.ts";
import { canonicalPath } from "./canonical-path.ts";

/** A socket's entry in the kernel's socket tables. */
export interface SocketInfo {
  /** The bound local address; a Unix socket without a path has an empty one. */
  address: Address;
  /** True for a TCP socket in the LISTEN state, or a Unix stream socket that listens. */
  listening: boolean;
  /** `stream` for TCP and Unix stream sockets, `datagram` and `seqpacket` for Unix sockets of those types. */
  type: "stream" | "datagram" | "seqpacket" | "other";
}

/** TCP state LISTEN, as /proc/net/tcp prints it (TCP_LISTEN in <net/tcp_states.h>). */
const TCP_LISTEN = "0A";
/** `__SO_ACCEPTCON`, the flag of a listening socket in /proc/net/unix. */
const UNIX_ACCEPTING = 0x10000;
const UNIX_TYPES: Record<string, SocketInfo["type"]> = { "0001": "stream", "0002": "datagram", "0005": "seqpacket" };

/**
 * Returns the socket inode of descriptor `fd` of this process, or undefined when the
 * descriptor is closed or is not a socket.
 */
export function socketInode(fd: number): string | undefined {
  let target: string;
  try {
    target = readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }

  return /^socket:\[(\d+)\]$/.exec(target)?.[1];
}

/** Describes the open file of descriptor `fd` for an error message, such as "/dev/null" or "closed". */
export function describeDescriptor(fd: number): string {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return "closed";
  }
}

/**
 * Looks up the socket with `inode` in the TCP, TCP over IPv6 and Unix socket tables.
 * Returns undefined when it is in none of them, such as a UDP socket or a closed one.
 */
export function findSocket(inode: string): SocketInfo | undefined {
  for (const table of ["tcp", "tcp6"] as const) {
    const found = findTcpSocket(readTable(table), inode);
    if (found !== undefined) {
      return found;
    }
  }

  return findUnixSocket(readTable("unix"), inode);
}

function readTable(name: string): string {
  try {
    return readFileSync(`/proc/self/net/${name}`, "utf8");
  } catch {
    return "";
  }
}

/** Finds `inode` in the text of /proc/net/tcp or tcp6, whose 10th column is the inode. */
export function findTcpSocket(table: string, inode: string): SocketInfo | undefined {
  for (const line of table.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields[9] !== inode) {
      continue;
    }
    const [hexHost, hexPort] = fields[1]!.split(":");
    const address: Address = { kind: "tcp", host: decodeHost(hexHost!), port: Number.parseInt(hexPort!, 16) };

    return { address, listening: fields[3] === TCP_LISTEN, type: "stream" };
  }

  return undefined;
}

/** Finds `inode` in the text of /proc/net/unix: Num RefCount Protocol Flags Type St Inode Path. */
export function findUnixSocket(table: string, inode: string): SocketInfo | undefined {
  for (const line of table.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields[6] !== inode) {
      continue;
    }
    const listening = (Number.parseInt(fields[3]!, 16) & UNIX_ACCEPTING) !== 0;

    return { address: { kind: "unix", path: fields[7] ?? "" }, listening, type: UNIX_TYPES[fields[4]!] ?? "other" };
  }

  return undefined;
}

/**
 * Decodes a host of /proc/net/tcp or tcp6: 8 or 32 hex digits, printed as 32-bit words in the
 * machine's byte order. Returns the IP in the form that `canonicalHost` gives.
 */
export function decodeHost(hex: string, byteOrder = endianness()): string {
  const bytes: number[] = [];
  for (let word = 0; word < hex.length; word += 8) {
    const wordBytes = hex.slice(word, word + 8).match(/../g)!.map((pair) => Number.parseInt(pair, 16));
    bytes.push(...(byteOrder === "LE" ? wordBytes.reverse() : wordBytes));
  }
  if (bytes.length === 4) {
    return bytes.join(".");
  }

  const groups: string[] = [];
  for (let index = 0; index < 16; index += 2) {
    groups.push(((bytes[index]! << 8) | bytes[index + 1]!).toString(16));
  }

  return canonicalHost(groups.join(":"));
}

/**
 * Returns an IPv6 literal in its shortest form (RFC 5952, as the WHATWG URL parser writes it),
 * so that `[::1]` and `[0:0:0:0:0:0:0:1]` compare equal. Other hosts are returned unchanged.
 */
export function canonicalHost(host: string): string {
  if (!host.includes(":")) {
    return host;
  }
  try {
    return new URL(`http://[${host}]/`).hostname.slice(1, -1);
  } catch {
    return host;
  }
}

/**
 * Formats an address in canonical form, for comparing listen addresses with sockets. A TCP host
 * gets its shortest form. A Unix socket path gets its symlinks resolved and `//` or `..` removed
 * (see `canonicalPath`), so `/var/run/lb.sock` matches `/run/lb.sock` where /var/run links to /run.
 */
export function canonicalAddress(address: Address): string {
  if (address.kind === "tcp") {
    return formatAddress({ ...address, host: canonicalHost(address.host) });
  }

  // The socket tables show an abstract socket as `@name`, which is no file system path.
  return address.path.startsWith("/") ? formatAddress({ ...address, path: canonicalPath(address.path) }) : formatAddress(address);
}
