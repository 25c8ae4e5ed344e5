import { isIP } from "node:net";
import { canonicalHost } from "./address.ts";

/** Longest DNS name in text form, without the trailing dot (RFC 1035 section 2.3.4 allows 255 bytes on the wire). */
const MAX_HOST_NAME_LENGTH = 253;

/**
 * A host name as resolvers accept it: labels of letters, digits, `-` and `_` (SRV-style names
 * such as `_etcd-server._tcp` use it), of 1 to 63 characters, separated by dots, with an
 * optional trailing dot.
 */
const HOST_NAME = /^(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?$/;

/** Control characters (Unicode category Cc: C0, DEL and C1), which no socket path or host name of a target should contain. */
const CONTROL_CHARACTER = /\p{Cc}/u;

/** Returns true when `text` contains a control character, such as ESC or a newline. */
export function hasControlCharacter(text: string): boolean {
  return CONTROL_CHARACTER.test(text);
}

/**
 * Describes why a target host cannot be dialed as a backend, or returns undefined for a
 * usable one. It rejects a host name that is not DNS syntax, and the IP addresses no backend
 * has: IPv4 multicast (224.0.0.0/4), the limited broadcast address 255.255.255.255 and IPv6
 * multicast (ff00::/8), in every spelling `canonicalHost` reads. The unspecified addresses
 * are rejected by the caller with their own hint.
 */
export function targetHostProblem(host: string): string | undefined {
  const family = isIP(host);
  if (family === 0) {
    if (host.length > MAX_HOST_NAME_LENGTH || !HOST_NAME.test(host)) {
      return `"${host}" is not a valid host name (letters, digits, "-" and "_" in dot-separated labels of at most 63 characters)`;
    }

    return undefined;
  }

  const canonical = canonicalHost(host);
  if (isIP(canonical) === 4) {
    const first = Number(canonical.split(".")[0]);
    if (first >= 224 && first <= 239) {
      return `${host} is an IPv4 multicast address, which a TCP connection cannot reach`;
    }
    if (canonical === "255.255.255.255") {
      return `${host} is the broadcast address, which a TCP connection cannot reach`;
    }
  } else if (/^ff[0-9a-f]{2}:/.test(canonical)) {
    return `${host} is an IPv6 multicast address, which a TCP connection cannot reach`;
  }

  return undefined;
}
