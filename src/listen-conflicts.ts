import { isIP, isIPv4 } from "node:net";
import { type Address, formatAddress } from "./address.ts";

/** An address tinylb binds, with the setting that requests it, such as `--listen` or `admin`. */
export interface BindRequest {
  setting: string;
  address: Address;
}

/**
 * Finds two bind requests of this process that would clash, so the second bind would fail with
 * EADDRINUSE against this very process. Returns the message for the first clash, or undefined.
 *
 * Two Unix sockets clash on the same path. Two TCP addresses clash on the same port when the
 * hosts are equal or one is a wildcard that covers the other. Port 0 never clashes, because
 * the kernel picks a free one. `::` covers every IP because Linux binds it dual-stack by
 * default, and `0.0.0.0` covers every IPv4 address. `localhost` counts as 127.0.0.1, the only address
 * tinylb binds for it, and IPv6 addresses are compared in their shortest form. Other host names
 * are not resolved, so they never clash here.
 */
export function findListenConflict(requests: readonly BindRequest[]): string | undefined {
  for (const [index, later] of requests.entries()) {
    for (const earlier of requests.slice(0, index)) {
      if (clash(earlier.address, later.address)) {
        return `${later.setting} ${formatAddress(later.address)} ${describeClash(earlier, later)}; an address can be bound only once, so remove one or change it`;
      }
    }
  }

  return undefined;
}

function describeClash(earlier: BindRequest, later: BindRequest): string {
  if (formatAddress(earlier.address) !== formatAddress(later.address)) {
    const same = earlier.address.kind === "tcp" && later.address.kind === "tcp" && canonicalHost(earlier.address.host) === canonicalHost(later.address.host);

    return `${same ? "is the same address as" : "overlaps"} ${earlier.setting} ${formatAddress(earlier.address)}`;
  }

  return earlier.setting === later.setting ? "is given twice" : `is also the ${earlier.setting} address`;
}

function clash(a: Address, b: Address): boolean {
  if (a.kind === "unix" || b.kind === "unix") {
    return a.kind === "unix" && b.kind === "unix" && a.path === b.path;
  }
  if (a.port === 0 || a.port !== b.port) {
    return false;
  }
  const hostA = canonicalHost(a.host);
  const hostB = canonicalHost(b.host);

  return hostA === hostB || covers(hostA, hostB) || covers(hostB, hostA);
}

/**
 * Returns one spelling per host: `localhost` as 127.0.0.1, an IPv6 address in its shortest form
 * (`0:0::1` as `::1`), and an IPv4-mapped IPv6 address as its IPv4 address, which Linux binds
 * as the same address. A zone (`%eth0`) is kept.
 */
function canonicalHost(host: string): string {
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

function covers(wildcard: string, host: string): boolean {
  return (wildcard === "::" && isIP(host) !== 0) || (wildcard === "0.0.0.0" && isIPv4(host));
}
