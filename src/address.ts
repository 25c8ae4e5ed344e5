/**
 * Socket addresses as tinylb writes them: `host:port`, `[ipv6]:port` or `unix:/path`.
 *
 * The same syntax names a backend's target and a listener's address, so both
 * parse here and print back in one canonical form.
 */

import { isIP, isIPv4, isIPv6 } from "node:net";
import { socketPathProblem } from "./socket-path.ts";
import { escapeControlCharacters } from "./logger.ts";
import { hasControlCharacter, targetHostProblem } from "./target-host.ts";

/** A TCP address: a host name or IP literal and a port. */
export interface TcpAddress {
  kind: "tcp";
  /** Host name or IP literal, without brackets. */
  host: string;
  port: number;
}

/** A Unix domain socket address. */
export interface UnixAddress {
  kind: "unix";
  /** Filesystem path of the socket. */
  path: string;
}

/** A parsed socket address. */
export type Address = TcpAddress | UnixAddress;

/** An address string that does not parse, carrying the value and what would be valid. */
export class AddressError extends Error {
  override name = "AddressError";
}

/** The host of HAProxy's `bind *:PORT`, which a listen address may use for `0.0.0.0`. */
const ANY_HOST = "*";

const ADDRESS_FORMS = "expected host:port, [ipv6]:port or unix:/path";

/**
 * Rewrites a `parseAddress` error for a setting that takes TCP addresses only, so that it
 * offers no `unix:/path` form.
 */
export function withoutUnixForm(error: AddressError): AddressError {
  return new AddressError(error.message.replace(ADDRESS_FORMS, "expected host:port or [ipv6]:port"));
}

/**
 * Parses an address string.
 *
 * @throws {AddressError} when the string is not one of the three forms or the port is
 *   not a whole number from 1 to 65535 (0 too when `allowPortZero` is set, for listeners
 *   that let the kernel pick).
 */
export function parseAddress(text: string, allowPortZero = false): Address {
  if (text.length > MAX_ADDRESS_LENGTH) {
    throw new AddressError(`invalid address "${text.slice(0, 40)}..." (${text.length} characters): an address has at most ${MAX_ADDRESS_LENGTH}`);
  }
  const value = text.trim();
  if (value.startsWith("unix:")) {
    return parseUnix(value);
  }

  let host: string;
  let portText: string;
  if (value.startsWith("[")) {
    const close = value.indexOf("]");
    if (close < 0 || value[close + 1] !== ":") {
      throw new AddressError(`invalid address "${text}": ${ADDRESS_FORMS}`);
    }
    host = value.slice(1, close);
    portText = value.slice(close + 2);
  } else {
    const colon = value.lastIndexOf(":");
    if (colon === 0 && value.indexOf(":") === 0) {
      throw new AddressError(`invalid address "${text}": the host is missing; ${missingHostHint(value.slice(1), allowPortZero)}`);
    }
    if (colon <= 0 || value.indexOf(":") !== colon) {
      const hint = value.split(":").length > 2 ? " (put an IPv6 address in brackets)" : "";
      throw new AddressError(`invalid address "${text}": ${ADDRESS_FORMS}${hint}`);
    }
    host = value.slice(0, colon);
    portText = value.slice(colon + 1);
  }

  if (host === "" || /[\s/]/.test(host)) {
    throw new AddressError(`invalid address "${text}": the host is empty or contains spaces or slashes`);
  }
  // A resolver would read "10.0.0.300" as a host name, so a mistyped IPv4 address would be
  // looked up. getaddrinfo(3) also reads "0x7f.0.0.1" and "127.1" as 127.0.0.1, spellings that
  // would slip past the check for tinylb's own listen addresses, so those are rejected too.
  if (looksNumeric(host) && !isIPv4(host)) {
    throw new AddressError(`invalid address "${text}": "${host}" is not a valid IPv4 address (four decimal numbers from 0 to 255)`);
  }
  if (value.startsWith("[") && !isIPv6(host)) {
    throw new AddressError(`invalid address "${text}": "${host}" in brackets is not a valid IPv6 address`);
  }

  return { kind: "tcp", host, port: parsePort(text, portText, allowPortZero) };
}

/**
 * Parses the address of a socket that tinylb binds: a listener, the admin API or the metrics
 * server. Port 0 is allowed, and the host `*` is read as `0.0.0.0`, every IPv4 address, as
 * HAProxy reads `bind *:PORT`. Without that, Bun 1.4.4 would bind `*` dual-stack like `[::]`, and the
 * checks for clashing listen addresses and for backends that target them would not know it.
 *
 * @throws {AddressError} as `parseAddress` does.
 */
export function parseBindAddress(text: string): Address {
  const address = parseAddress(text, true);
  if (address.kind === "tcp" && address.host === ANY_HOST) {
    return { ...address, host: "0.0.0.0" };
  }

  return address;
}

/**
 * Parses a listen address as `parseBindAddress` does. Beyond `parseAddress`, it rejects a relative
 * Unix socket path, which would depend on tinylb's working folder, and one that bind(2) would
 * reject for its length, so that `tinylb check` catches both too.
 *
 * @throws {AddressError} naming the value and what to write instead.
 */
export function parseListenAddress(text: string): Address {
  const address = parseBindAddress(text);
  if (address.kind === "unix") {
    checkSocketPath(text, address.path);
  }

  return address;
}

/**
 * Parses the target of a backend: an address that tinylb dials. Beyond `parseAddress`, it
 * rejects forms that parse but do not name a backend reliably. A relative Unix socket path
 * depends on tinylb's working folder, connect(2) rejects a Unix socket path that is too long,
 * and Linux dials the unspecified address `0.0.0.0` or `::` as this machine. A control
 * character, a host name outside DNS syntax, and a multicast or broadcast address are rejected
 * too (see `targetHostProblem`). `createBackend` calls it, so every provider's targets pass here.
 *
 * @throws {AddressError} naming the value and what to write instead.
 */
export function parseTarget(text: string): Address {
  if (hasControlCharacter(text.trim())) {
    throw new AddressError(`invalid address "${escapeControlCharacters(text.trim())}": it contains a control character; use a socket path or host name without one`);
  }
  const address = parseAddress(text);
  if (address.kind === "unix") {
    checkSocketPath(text, address.path);
  }
  const hostProblem = address.kind === "tcp" && address.host !== ANY_HOST ? targetHostProblem(address.host) : undefined;
  if (hostProblem !== undefined) {
    throw new AddressError(`invalid address "${text.trim()}": ${hostProblem}; use the backend's own address`);
  }
  if (address.kind === "tcp" && address.host === ANY_HOST) {
    throw new AddressError(
      `invalid address "${text.trim()}": * is 0.0.0.0, every IPv4 address of this machine, which only a listener can use; use the backend's own address, or 127.0.0.1:${address.port} for this machine`,
    );
  }
  if (address.kind === "tcp" && isUnspecified(address.host)) {
    const loopback = canonicalHost(address.host) === "::" ? `[::1]:${address.port}` : `127.0.0.1:${address.port}`;
    throw new AddressError(
      `invalid address "${text.trim()}": ${address.host} is the unspecified address, which only a listener can use; use the backend's own address, or ${loopback} for this machine`,
    );
  }

  return address;
}

/**
 * Rejects a Unix socket path of the address `text` that `socketPathProblem` finds fault with.
 *
 * @throws {AddressError} naming the address, the problem and the fix.
 */
function checkSocketPath(text: string, path: string): void {
  const problem = socketPathProblem(path);
  if (problem !== undefined) {
    throw new AddressError(`invalid address "${text.trim()}": ${problem}`);
  }
}

/** Returns true for every spelling of `0.0.0.0` and `::`, the addresses that mean "any" to bind(2). */
export function isUnspecified(host: string): boolean {
  const canonical = canonicalHost(host);

  return canonical === "0.0.0.0" || canonical === "::";
}

/**
 * Returns one spelling per host, so that two spellings of one address compare equal. It writes
 * `localhost` as 127.0.0.1 and an IPv6 address in its shortest form (`0:0::1` as `::1`). An
 * IPv4-mapped IPv6 address becomes its IPv4 address, because Linux binds and dials both as the
 * same address. A zone (`%eth0`) is kept. Other host names are only lowercased, never resolved.
 */
export function canonicalHost(host: string): string {
  const lowered = host.toLowerCase();
  if (lowered === "localhost") {
    return "127.0.0.1";
  }
  if (isIP(lowered) !== 6) {
    return lowered;
  }

  const [ip, zone] = lowered.split("%", 2) as [string, string | undefined];
  // The URL parser (WHATWG URL standard) writes an IPv6 host compressed and in lower case, in brackets.
  const shortest = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(shortest);
  if (mapped !== null && zone === undefined) {
    const high = parseInt(mapped[1]!, 16);
    const low = parseInt(mapped[2]!, 16);

    return [high >> 8, high & 0xff, low >> 8, low & 0xff].join(".");
  }

  return zone === undefined ? shortest : `${shortest}%${zone}`;
}

function missingHostHint(port: string, listener: boolean): string {
  return listener
    ? `use 127.0.0.1:${port} for this machine only, or 0.0.0.0:${port} or [::]:${port} for every interface`
    : `use a host name or IP, such as 127.0.0.1:${port}`;
}

function parseUnix(value: string): UnixAddress {
  const path = value.slice("unix:".length);
  if (path === "" || path.includes("\0")) {
    throw new AddressError(`invalid address "${value}": unix: needs a socket path, as in unix:/run/tinylb.sock`);
  }

  return { kind: "unix", path };
}

function parsePort(text: string, portText: string, allowZero: boolean): number {
  const lowest = allowZero ? 0 : 1;
  if (!/^\d{1,5}$/.test(portText)) {
    throw new AddressError(`invalid address "${text}": the port "${portText}" must be a number from ${lowest} to 65535`);
  }

  const port = Number(portText);
  if (port < lowest || port > 65535) {
    throw new AddressError(`invalid address "${text}": the port ${port} must be from ${lowest} to 65535`);
  }

  return port;
}

/**
 * Maximum length of an address string: room for a 253-character DNS name with brackets and a
 * port, and for a Unix socket path (at most 107 bytes on Linux). Longer input is rejected
 * before it is quoted in an error message.
 */
const MAX_ADDRESS_LENGTH = 512;

/** Returns true for a host whose every dot-separated part is a decimal or hexadecimal number, as inet_aton(3) reads it. */
function looksNumeric(host: string): boolean {
  return host.split(".").every((part) => /^(0x[0-9a-f]*|\d*)$/i.test(part));
}

/** Formats an address in canonical form, bracketing IPv6 literals. */
export function formatAddress(address: Address): string {
  if (address.kind === "unix") {
    return `unix:${address.path}`;
  }

  const host = address.host.includes(":") ? `[${address.host}]` : address.host;

  return `${host}:${address.port}`;
}

/** Returns true for addresses that only this machine can reach: loopback IPs, `localhost` and Unix sockets. */
export function isLocalAddress(address: Address): boolean {
  if (address.kind === "unix") {
    return true;
  }

  const host = address.host.toLowerCase();

  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
