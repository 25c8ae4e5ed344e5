import { networkInterfaces } from "node:os";
import { isIPv4 } from "node:net";
import { resolve } from "node:path";
import { type Address, formatAddress } from "./address.ts";
import type { Backend } from "./backend.ts";

/**
 * Finds the first backend whose target is one of tinylb's own listen addresses. Each connection
 * to it would dial tinylb again, and that one again, until descriptors run out. Returns a message
 * naming the backend id, its target and the listen address, or undefined.
 *
 * A target matches a listener on the same Unix socket path, or on the same port with the same
 * host. `localhost` counts as 127.0.0.1 and ::1. A listener on `0.0.0.0` also matches every
 * IPv4 address of this machine's interfaces, and one on `::` every IPv4 and IPv6 address of
 * them (Linux binds `::` dual-stack by default).
 * NOTE: host names other than `localhost` are not resolved, so a name of this machine still loops.
 */
export function findSelfTarget(backends: Iterable<Backend>, listen: readonly Address[]): string | undefined {
  const addresses = listen.filter((address) => address.kind === "unix" || address.port !== 0);
  if (addresses.length === 0) {
    return undefined;
  }

  let local: Set<string> | undefined;
  for (const backend of backends) {
    for (const address of addresses) {
      local ??= addresses.some(isWildcard) ? localHosts() : new Set();
      if (reaches(backend.address, address, local)) {
        return `backend "${backend.id}" has target ${backend.target}, which is tinylb's own listen address ${formatAddress(address)}, so its connections would loop back into tinylb; use the backend's own address`;
      }
    }
  }

  return undefined;
}

function reaches(target: Address, listener: Address, local: ReadonlySet<string>): boolean {
  if (target.kind === "unix" || listener.kind === "unix") {
    return target.kind === "unix" && listener.kind === "unix" && resolve(target.path) === resolve(listener.path);
  }
  if (target.port !== listener.port) {
    return false;
  }

  const hosts = canonicalHosts(target.host);
  const listenHost = listener.host.toLowerCase();
  if (listenHost === "0.0.0.0") {
    return hosts.some((host) => isIPv4(host) && (local.has(host) || host.startsWith("127.")));
  }
  if (listenHost === "::") {
    return hosts.some((host) => local.has(host) || host.startsWith("127.") || host === "::1");
  }

  return canonicalHosts(listener.host).some((host) => hosts.includes(host));
}

function isWildcard(address: Address): boolean {
  return address.kind === "tcp" && (address.host === "0.0.0.0" || address.host === "::");
}

/** Returns the hosts a host is without a DNS lookup: both loopback addresses for `localhost`, else itself. */
function canonicalHosts(host: string): string[] {
  const lowered = host.toLowerCase();

  return lowered === "localhost" ? ["127.0.0.1", "::1"] : [lowered];
}

/** Collects the IP addresses of this machine's network interfaces, lowercased. */
function localHosts(): Set<string> {
  const hosts = new Set<string>();
  for (const entries of Object.values(networkInterfaces())) {
    for (const entry of entries ?? []) {
      hosts.add(entry.address.toLowerCase());
    }
  }

  return hosts;
}
