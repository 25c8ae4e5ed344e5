import { ptr } from "bun:ffi";
import { endianness } from "node:os";
import { lastErrorCode, loadLibc } from "./libc.ts";

/** `AF_UNIX`, `SOCK_DGRAM`, `SOCK_NONBLOCK` and `SOCK_CLOEXEC` from Linux's <sys/socket.h>. */
const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
/** `MSG_DONTWAIT` and `MSG_NOSIGNAL`: fail with EAGAIN rather than block, and raise no SIGPIPE. */
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
/** Size of `sun_path` in Linux's `struct sockaddr_un`. */
const SUN_PATH_BYTES = 108;

/**
 * Checks a NOTIFY_SOCKET value: an absolute path, or `@name` for a name in the abstract
 * namespace. Returns the problem, or undefined when the value can be used.
 */
export function notifySocketProblem(value: string): string | undefined {
  if (!value.startsWith("/") && !value.startsWith("@")) {
    return "expected an absolute Unix socket path or @ and an abstract socket name";
  }
  // A path needs a terminating NUL byte in sun_path, an abstract name does not.
  const limit = value.startsWith("@") ? SUN_PATH_BYTES : SUN_PATH_BYTES - 1;
  if (Buffer.byteLength(value) > limit) {
    return `longer than the ${limit} bytes a Unix socket address can have`;
  }

  return undefined;
}

/**
 * Encodes `struct sockaddr_un` for a NOTIFY_SOCKET value that `notifySocketProblem` accepts.
 * An abstract name (`@name`) starts with a NUL byte and has no terminating one, as
 * sd_notify(3) sends it; a path ends with a NUL byte.
 */
export function encodeSocketAddress(value: string): Uint8Array {
  const name = Buffer.from(value.startsWith("@") ? `\0${value.slice(1)}` : `${value}\0`);
  const address = new Uint8Array(2 + name.byteLength);
  new DataView(address.buffer).setUint16(0, AF_UNIX, endianness() === "LE");
  address.set(name, 2);

  return address;
}

/**
 * Sends `message` as one datagram to the Unix socket `address` (a NOTIFY_SOCKET value), without
 * blocking: a full receive queue fails with EAGAIN. Bun has no Unix datagram socket, so this
 * calls socket(2) and sendto(2) through bun:ffi, on a socket opened and closed for each message.
 * Returns undefined once the datagram was sent, or else the errno code or the reason.
 */
export function sendDatagram(address: string, message: string): string | undefined {
  const libc = loadLibc();
  if (libc === null) {
    return "socket(2) from the C library could not be loaded";
  }

  const fd = libc.socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return `socket(2) failed (${lastErrorCode(libc)})`;
  }
  try {
    const data = Buffer.from(message);
    const socketAddress = encodeSocketAddress(address);
    const sent = libc.sendto(fd, ptr(data), data.byteLength, MSG_DONTWAIT | MSG_NOSIGNAL, ptr(socketAddress), socketAddress.byteLength);

    return Number(sent) < 0 ? lastErrorCode(libc) : undefined;
  } finally {
    libc.close(fd);
  }
}

/** Reads CLOCK_MONOTONIC in microseconds, the clock of systemd's MONOTONIC_USEC, or undefined without the C library. */
export function monotonicMicroseconds(): bigint | undefined {
  const libc = loadLibc();
  const timespec = new BigInt64Array(2);
  // CLOCK_MONOTONIC is 1 in Linux's <time.h>; struct timespec is two 64-bit fields on 64-bit Linux.
  if (libc === null || libc.clock_gettime(1, ptr(timespec)) !== 0) {
    return undefined;
  }

  return timespec[0]! * 1_000_000n + timespec[1]! / 1000n;
}
