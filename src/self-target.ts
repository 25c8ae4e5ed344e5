import { networkInterfaces } from "node:os";
import { isIPv4 } from "node:net";
import { type Address, canonicalHost, formatAddress } from "./address.ts";
import type { Backend } from "./backend.ts";
import { BackendSet } from "./backend-set.ts";
import type { Logger } from "./logger.ts";
import type { PublishBackendSet } from "./providers/provider.ts";
import { canonicalPath } from "./canonical-path.ts";

/**
 * Finds the first backend whose target is one of tinylb's own listen addresses. Each connection
 * to it would dial tinylb again, and that one again, until descriptors run out. Returns a message
 * naming the backend id, its target and the listen address, or undefined.
 *
 * A target matches a listener on the same Unix socket path, or on the same port with the same
 * host. Unix socket paths are compared as `canonicalPath` spells them, so a path through
 * a symlinked folder or a symlink to the socket matches. Hosts are compared as `canonicalHost` spells them, so `[0:0::1]` is `[::1]` and
 * `[::ffff:127.0.0.1]` is 127.0.0.1. `localhost` counts as 127.0.0.1 and ::1. A listener on
 * `0.0.0.0` also matches every IPv4 address of this machine's interfaces, and one on `::` every
 * IPv4 and IPv6 address of them (Linux binds `::` dual-stack by default).
 * NOTE: host names other than `localhost` are not resolved, so a name of this machine still loops.
 */
export function findSelfTarget(backends: Iterable<Backend>, listen: readonly Address[]): string | undefined {
  const check = createSelfTargetCheck(listen);
  for (const backend of backends) {
    const looping = check(backend);
    if (looping !== undefined) {
      return looping;
    }
  }

  return undefined;
}

/**
 * Creates the check of `findSelfTarget` for one backend at a time. The check returns the message
 * for a backend whose target is one of the `listen` addresses, or undefined. It reads the
 * interface addresses that a wildcard listener covers once, on its first call.
 */
export function createSelfTargetCheck(listen: readonly Address[]): (backend: Backend) => string | undefined {
  const addresses = listen.filter((address) => address.kind === "unix" || address.port !== 0);
  let local: Set<string> | undefined;

  return (backend) => {
    for (const address of addresses) {
      local ??= addresses.some(isWildcard) ? localHosts() : new Set();
      if (reaches(backend.address, address, local)) {
        return `backend "${backend.id}" has target ${backend.target}, which is tinylb's own listen address ${formatAddress(address)}, so its connections would loop back into tinylb; use the backend's own address`;
      }
    }

    return undefined;
  };
}

/**
 * Wraps the publish function of a provider whose backends are not checked before they are
 * published, such as etcd, DNS or Kubernetes. Backends whose target is one of the addresses
 * `listen` returns at the time of the publish are left out of the set. Each is logged as a
 * warning when it appears, and again only after it has left the provider's set and come back.
 */
export function skipSelfTargets(provider: string, publish: PublishBackendSet, listen: () => readonly Address[], logger: Logger): PublishBackendSet {
  const log = logger.with({ component: "providers", provider });
  let reported = new Set<string>();

  return (set) => {
    const check = createSelfTargetCheck(listen());
    const usable: Backend[] = [];
    const looping = new Set<string>();
    for (const backend of set.backends) {
      const message = check(backend);
      if (message === undefined) {
        usable.push(backend);
        continue;
      }

      const key = `${backend.id}\0${backend.target}`;
      looping.add(key);
      if (!reported.has(key)) {
        log.warn("skipping a backend whose target is tinylb's own listen address", { backend: backend.id, target: backend.target, err: message });
      }
    }
    reported = looping;

    publish(usable.length === set.size ? set : new BackendSet(usable));
  };
}

function reaches(target: Address, listener: Address, local: ReadonlySet<string>): boolean {
  if (target.kind === "unix" || listener.kind === "unix") {
    return target.kind === "unix" && listener.kind === "unix" && canonicalPath(target.path) === canonicalPath(listener.path);
  }
  if (target.port !== listener.port) {
    return false;
  }

  const hosts = canonicalHosts(target.host);
  const listenHost = canonicalHost(listener.host);
  if (listenHost === "0.0.0.0") {
    return hosts.some((host) => isIPv4(host) && (local.has(host) || host.startsWith("127.")));
  }
  if (listenHost === "::") {
    return hosts.some((host) => local.has(host) || host.startsWith("127.") || host === "::1");
  }

  return canonicalHosts(listener.host).some((host) => hosts.includes(host));
}

function isWildcard(address: Address): boolean {
  if (address.kind !== "tcp") {
    return false;
  }
  const host = canonicalHost(address.host);

  return host === "0.0.0.0" || host === "::";
}

/**
 * Returns the hosts a host is without a DNS lookup, each spelled by `canonicalHost`: both
 * loopback addresses for `localhost`, because a dial may pick either, else the host alone.
 */
function canonicalHosts(host: string): string[] {
  return host.toLowerCase() === "localhost" ? ["127.0.0.1", "::1"] : [canonicalHost(host)];
}

/** Collects the IP addresses of this machine's network interfaces, spelled by `canonicalHost`. */
function localHosts(): Set<string> {
  const hosts = new Set<string>();
  for (const entries of Object.values(networkInterfaces())) {
    for (const entry of entries ?? []) {
      hosts.add(canonicalHost(entry.address));
    }
  }

  return hosts;
}
