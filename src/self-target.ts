import { statSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { isIPv4 } from "node:net";
import { type Address, canonicalHost, formatAddress, type TcpAddress } from "./address.ts";
import type { Backend } from "./backend.ts";
import { BackendSet } from "./backend-set.ts";
import type { Logger } from "./logger.ts";
import type { PublishBackendSet } from "./providers/provider.ts";
import { canonicalPath } from "./canonical-path.ts";

/** An address where tinylb serves its own control plane, which no backend may target. */
export interface ControlAddress {
  /** Name of the server at the address, as messages write it. */
  role: "admin API" | "metrics server";
  address: Address;
}

/**
 * Returns the admin API and metrics addresses of `settings` that are on, as control addresses.
 * `bound` gives a server's bound address, which replaces a configured port 0.
 */
export function controlAddressesOf(
  settings: { admin: Address | "off"; metrics: TcpAddress | "off" },
  bound: { admin?: Address; metrics?: TcpAddress } = {},
): ControlAddress[] {
  const control: ControlAddress[] = [];
  const admin = bound.admin ?? settings.admin;
  if (admin !== "off") {
    control.push({ role: "admin API", address: admin });
  }
  const metrics = bound.metrics ?? settings.metrics;
  if (metrics !== "off") {
    control.push({ role: "metrics server", address: metrics });
  }

  return control;
}

/** A backend whose target reaches tinylb itself, with the message naming both. */
interface OwnTargetMatch {
  /** `listen` for a listen address, `control` for the admin API or metrics address. */
  kind: "listen" | "control";
  message: string;
}

/**
 * Finds the first backend whose target is one of tinylb's own listen addresses, or the address
 * of its admin API or metrics server. Each connection to a listen address would dial tinylb
 * again, and that one again, until descriptors run out. A target on a control address would let
 * every client of the listeners reach the admin API or the metrics server through the balancer.
 * Returns a message naming the backend id, its target and tinylb's address, or undefined.
 *
 * A target matches an address on the same Unix socket path, or on the same port with the same
 * host. Unix socket paths are compared as `canonicalPath` spells them, so a path through
 * a symlinked folder or a symlink to the socket matches. Hosts are compared as `canonicalHost` spells them, so `[0:0::1]` is `[::1]` and
 * `[::ffff:127.0.0.1]` is 127.0.0.1. `localhost` counts as 127.0.0.1 and ::1. An address on
 * `0.0.0.0` also matches every IPv4 address of this machine's interfaces, and one on `::` every
 * IPv4 and IPv6 address of them (Linux binds `::` dual-stack by default).
 * NOTE: host names other than `localhost` are not resolved, so a name of this machine still loops.
 */
export function findSelfTarget(backends: Iterable<Backend>, listen: readonly Address[], control: readonly ControlAddress[] = []): string | undefined {
  const check = createSelfTargetCheck(listen, control);
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
 * for a backend whose target is one of the `listen` or `control` addresses, or undefined. It
 * reads the interface addresses that a wildcard address covers once, on its first call.
 */
export function createSelfTargetCheck(listen: readonly Address[], control: readonly ControlAddress[] = []): (backend: Backend) => string | undefined {
  const match = createOwnTargetMatch(listen, control);

  return (backend) => match(backend)?.message;
}

/** The fix for a backend from the operator's own flags, file or admin request. */
const OPERATOR_FIX = "use the backend's own address";

function createOwnTargetMatch(listen: readonly Address[], control: readonly ControlAddress[], fix = OPERATOR_FIX): (backend: Backend) => OwnTargetMatch | undefined {
  const bound = (address: Address): boolean => address.kind === "unix" || address.port !== 0;
  const listeners = listen.filter(bound);
  const controls = control.filter((entry) => bound(entry.address));
  let local: Set<string> | undefined;
  const localHostsOnce = (): Set<string> => {
    local ??= [...listeners, ...controls.map((entry) => entry.address)].some(isWildcard) ? localHosts() : new Set();

    return local;
  };

  return (backend) => {
    for (const address of listeners) {
      if (reaches(backend.address, address, localHostsOnce())) {
        const message = `backend "${backend.id}" has target ${backend.target}, which is tinylb's own listen address ${formatAddress(address)}, so its connections would loop back into tinylb; ${fix}`;

        return { kind: "listen", message };
      }
    }
    for (const { role, address } of controls) {
      if (reaches(backend.address, address, localHostsOnce())) {
        const message = `backend "${backend.id}" has target ${backend.target}, which is tinylb's own ${role} address ${formatAddress(address)}, so clients of the listeners would reach the ${role} through the balancer; ${fix}`;

        return { kind: "control", message };
      }
    }

    return undefined;
  };
}

/** Returns the fix for a backend that `provider` publishes, which tinylb cannot change itself. */
function providerFix(provider: string): string {
  if (provider.startsWith("dns")) {
    return "correct the DNS records to name the backend's own address";
  }
  if (provider.startsWith("etcd")) {
    return "correct the etcd key's value to the backend's own address";
  }
  if (provider === "kubernetes") {
    return "correct the endpoints of the kubernetes Service to the backends' own addresses";
  }

  return `correct what provider ${provider} publishes to the backend's own address`;
}

/** Addresses of tinylb itself that `skipSelfTargets` checks at each publish. */
export interface OwnAddresses {
  listen: () => readonly Address[];
  control: () => readonly ControlAddress[];
}

/** Warning of `skipSelfTargets` for each kind of skipped backend. */
const SKIP_WARNINGS = {
  listen: "skipping a backend whose target is tinylb's own listen address",
  control: "skipping a backend whose target is tinylb's own admin API or metrics address",
  unix: "skipping a backend with a Unix socket target, which only flags, the config file and the admin API may set",
} as const;

/**
 * Wraps the publish function of a network provider (DNS, Kubernetes, etcd), whose backends are
 * not checked before they are published. Backends whose target is one of the addresses `own`
 * returns at the time of the publish are left out of the set. So are Unix socket targets,
 * because a key in etcd or an API object should not turn every client of the listeners into a
 * client of a local socket. Each is logged as a warning when it appears, and again only after it has
 * left the provider's set and come back.
 */
export function skipSelfTargets(provider: string, publish: PublishBackendSet, own: OwnAddresses, logger: Logger): PublishBackendSet {
  const log = logger.with({ component: "providers", provider });
  let reported = new Set<string>();

  return (set) => {
    const match = createOwnTargetMatch(own.listen(), own.control(), providerFix(provider));
    const usable: Backend[] = [];
    const skipped = new Set<string>();
    for (const backend of set.backends) {
      const found = backend.address.kind === "unix" ? unixTargetMatch(backend) : match(backend);
      if (found === undefined) {
        usable.push(backend);
        continue;
      }

      const key = `${backend.id}\0${backend.target}`;
      skipped.add(key);
      if (!reported.has(key)) {
        log.warn(SKIP_WARNINGS[found.kind], { backend: backend.id, target: backend.target, err: found.message });
      }
    }
    reported = skipped;

    publish(usable.length === set.size ? set : new BackendSet(usable));
  };
}

function unixTargetMatch(backend: Backend): { kind: "unix"; message: string } {
  const message = `backend "${backend.id}" has the Unix socket target ${backend.target}, which a network provider may not publish; set it with --backend, the config file or the admin API`;

  return { kind: "unix", message };
}

function reaches(target: Address, listener: Address, local: ReadonlySet<string>): boolean {
  if (target.kind === "unix" || listener.kind === "unix") {
    return target.kind === "unix" && listener.kind === "unix" && !isOtherFile(target.path) && canonicalPath(target.path) === canonicalPath(listener.path);
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

/**
 * Returns true when `path` leads to an existing file that is not a socket, which no socket of
 * tinylb can be. Found with stat(2) alone, so a target such as a regular file is never opened,
 * not even with O_PATH as `canonicalPath` does.
 */
function isOtherFile(path: string): boolean {
  const stats = statSync(path, { throwIfNoEntry: false });

  return stats !== undefined && !stats.isSocket();
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
