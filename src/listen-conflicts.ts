import { isIP, isIPv4 } from "node:net";
import { type Address, canonicalHost, formatAddress } from "./address.ts";
import { canonicalPath } from "./canonical-path.ts";

/** An address tinylb binds, with the setting that requests it, such as `--listen` or `admin`. */
export interface BindRequest {
  setting: string;
  address: Address;
}

/**
 * Finds two bind requests of this process that would clash, so the second bind would fail with
 * EADDRINUSE against this very process. Returns the message for the first clash, or undefined.
 *
 * Two Unix sockets clash on the same path, compared as `canonicalPath` spells it, so that
 * `/run//lb.sock` or a path through a symlinked folder matches `/run/lb.sock`. Two TCP addresses clash on the same port when the
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
    if (earlier.address.kind === "unix") {
      return `is the same socket as ${earlier.setting} ${formatAddress(earlier.address)}`;
    }
    const same = later.address.kind === "tcp" && canonicalHost(earlier.address.host) === canonicalHost(later.address.host);

    return `${same ? "is the same address as" : "overlaps"} ${earlier.setting} ${formatAddress(earlier.address)}`;
  }

  return earlier.setting === later.setting ? "is given twice" : `is also the ${earlier.setting} address`;
}

function clash(a: Address, b: Address): boolean {
  if (a.kind === "unix" || b.kind === "unix") {
    return a.kind === "unix" && b.kind === "unix" && (a.path === b.path || canonicalPath(a.path) === canonicalPath(b.path));
  }
  if (a.port === 0 || a.port !== b.port) {
    return false;
  }
  const hostA = canonicalHost(a.host);
  const hostB = canonicalHost(b.host);

  return hostA === hostB || covers(hostA, hostB) || covers(hostB, hostA);
}

function covers(wildcard: string, host: string): boolean {
  return (wildcard === "::" && isIP(host) !== 0) || (wildcard === "0.0.0.0" && isIPv4(host));
}
