import { isIP } from "node:net";
import { join } from "node:path";
import { z } from "zod";
import { type Address, AddressError, formatAddress, parseAddress, parseBindAddress, type TcpAddress, withoutUnixForm } from "./address.ts";
import { privateAdminFolder } from "./admin-socket-access.ts";
import { parseDuration } from "./duration.ts";

/** A DNS name to resolve as A and AAAA, and the port every address gets. */
export interface DnsName {
  name: string;
  port: number;
}

/** Settings of the backend set sources besides `--backend` flags and the config file's list. */
export interface ProviderSettings {
  /** The admin API address, or "off". */
  admin: Address | "off";
  /** True when `admin` is the built-in default, so a failure to bind it only logs a warning. */
  adminIsDefault: boolean;
  adminAllowPublic: boolean;
  adminTokenFile?: string;
  /** The metrics server's TCP address, or "off". */
  metrics: TcpAddress | "off";
  /** Whether the config file is watched; SIGHUP re-reads it either way. */
  watchConfig: boolean;
  stateFile?: string;
  dns: {
    names: DnsName[];
    /** SRV record names. */
    srv: string[];
    /** DNS servers as `ip:port`; the system's resolvers when empty. */
    resolvers: string[];
    intervalMs: number;
  };
}

/** Provider settings from the command line; every field is optional. */
export interface ProviderFlags {
  admin?: Address | "off";
  adminAllowPublic?: boolean;
  adminTokenFile?: string;
  metrics?: TcpAddress | "off";
  watchConfig?: boolean;
  stateFile?: string;
  dns?: DnsName[];
  dnsSrv?: string[];
  dnsResolvers?: string[];
  dnsIntervalMs?: number;
}

/** Provider settings from a config file, under the same names as `ProviderFlags`. */
export type ProviderFileConfig = ProviderFlags;

/** Returns the admin socket used when `--admin` is not given: `/run/tinylb/admin.sock` for root, else `admin.sock` in `privateAdminFolder()`. */
export function defaultAdminAddress(): Address {
  const uid = process.getuid?.() ?? 0;
  if (uid === 0) {
    return { kind: "unix", path: "/run/tinylb/admin.sock" };
  }

  return { kind: "unix", path: join(privateAdminFolder(uid), "admin.sock") };
}

/** Default time between DNS lookups. */
export const DEFAULT_DNS_INTERVAL_MS = 30_000;

const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$/;

/** Parses `NAME:PORT` for `--dns`; returns an error message naming the value when it is invalid. */
export function parseDnsName(text: string): DnsName | string {
  const colon = text.lastIndexOf(":");
  const name = text.slice(0, colon);
  const port = Number(text.slice(colon + 1));
  if (colon <= 0 || !HOST_NAME.test(name) || !/^\d{1,5}$/.test(text.slice(colon + 1))) {
    return `invalid DNS name "${text}": expected NAME:PORT, such as api.internal:6443`;
  }
  if (port < 1 || port > 65535) {
    return `invalid DNS name "${text}": the port must be 1 to 65535, such as api.internal:6443`;
  }

  return { name, port };
}

/** Checks an SRV record name for `--dns-srv`; returns an error message when it is invalid. */
export function checkSrvName(text: string): string | undefined {
  return HOST_NAME.test(text) ? undefined : `invalid SRV name "${text}": expected a DNS name such as _https._tcp.api.internal`;
}

/** Parses a DNS server address for `--dns-resolver`: an IP address with a port, or without one for port 53. */
export function parseResolver(text: string): string | { error: string } {
  let bare = text;
  if (isIP(text) === 4) {
    bare = `${text}:53`;
  } else if (isIP(text) === 6) {
    bare = `[${text}]:53`;
  }
  const useAnIp = { error: `invalid DNS resolver "${text}": use an IP address, with a port unless it is 53, such as 10.0.0.53 or [::1]:5353` };
  let address: Address;
  try {
    address = parseAddress(bare);
  } catch (error) {
    // The address parser's message offers host names and Unix paths, which a resolver cannot be,
    // so it is shown only for an IP address with a bad port.
    const host = bare.slice(0, Math.max(0, bare.lastIndexOf(":"))).replace(/^\[(.*)\]$/, "$1");

    return isIP(host) === 0 ? useAnIp : { error: `invalid DNS resolver "${text}": ${(error as AddressError).message}` };
  }
  if (address.kind !== "tcp" || isIP(address.host) === 0) {
    return useAnIp;
  }

  return formatAddress(address);
}

/**
 * Returns a warning when DNS resolvers are set but no DNS or SRV name is, because the resolvers
 * are then never queried; else undefined. Static targets are resolved by the system's resolver.
 */
export function unusedResolverWarning(dns: ProviderSettings["dns"]): string | undefined {
  if (dns.resolvers.length === 0 || dns.names.length > 0 || dns.srv.length > 0) {
    return undefined;
  }

  return "a DNS resolver is set but no DNS name is, so it is never asked; add --dns NAME:PORT or --dns-srv NAME (dns.names or dns.srv in the config file), or drop the resolver";
}

/**
 * Parses the `--admin` value: an address or `off`.
 *
 * @throws {AddressError} for an invalid address, or a TCP address with a host name (see `requireIpHost`).
 */
export function parseAdminAddress(text: string): Address | "off" {
  if (text.trim().toLowerCase() === "off") {
    return "off";
  }
  const address = parseBindAddress(text);
  if (address.kind === "tcp") {
    requireIpHost(text, address);
  }

  return address;
}

/**
 * Parses the `--admin` value of a command that connects to the admin API, such as `tinylb
 * status`: an address or `off`. A host name such as `localhost` is accepted here, because
 * the command binds nothing.
 *
 * @throws {AddressError} for an invalid address.
 */
export function parseAdminClientAddress(text: string): Address | "off" {
  if (text.trim().toLowerCase() === "off") {
    return "off";
  }

  return parseBindAddress(text);
}

/**
 * Rejects a TCP admin or metrics address whose host is a name, such as `localhost`. The
 * server would bind whatever the resolver returns, which the hosts file can map to a public
 * address, while the loopback check sees only the name.
 *
 * @throws {AddressError} naming the value and the IP addresses to use.
 */
function requireIpHost(text: string, address: TcpAddress): void {
  if (isIP(address.host) === 0) {
    throw new AddressError(
      `invalid address "${text.trim()}": the host must be an IP address, because a name such as localhost binds whatever the resolver returns; use 127.0.0.1:${address.port} or [::1]:${address.port} for this machine`,
    );
  }
}

/**
 * Parses the `--metrics` value: a TCP address or `off`.
 *
 * @throws {AddressError} for an invalid address, or a Unix socket, where the admin API
 *   serves the same routes.
 */
export function parseMetricsAddress(text: string): TcpAddress | "off" {
  let address: Address | "off";
  try {
    address = parseAdminAddress(text);
  } catch (error) {
    throw error instanceof AddressError && !text.trim().startsWith("unix:") ? withoutUnixForm(error) : error;
  }
  if (address !== "off" && address.kind === "unix") {
    throw new AddressError(`invalid metrics address "${text}": a Unix socket is not allowed, because the admin API already serves /metrics, /healthz and /readyz on one (--admin ${text}); use host:port or [ipv6]:port`);
  }

  return address;
}

/** Builds the schema of a config file key whose address `parse` reads, such as `admin` or `metrics`, which may be off too. */
function addressKey<T>(parse: (text: string) => T) {
  return z.string().transform((text, context) => {
    try {
      return parse(text);
    } catch (error) {
      context.addIssue({ code: "custom", message: `${(error as AddressError).message}, or off` });

      return z.NEVER;
    }
  });
}

const dnsName = z.string().transform((text, context) => {
  const result = parseDnsName(text);
  if (typeof result === "string") {
    context.addIssue({ code: "custom", message: result });

    return z.NEVER;
  }

  return result;
});

const srvName = z.string().refine((text) => checkSrvName(text) === undefined, { message: "expected a DNS name such as _https._tcp.api.internal" });

const resolver = z.string().transform((text, context) => {
  const result = parseResolver(text);
  if (typeof result !== "string") {
    context.addIssue({ code: "custom", message: result.error });

    return z.NEVER;
  }

  return result;
});

const interval = z.string().transform((text, context) => {
  const result = parseDuration(text);
  if (typeof result === "string" || result < 1000) {
    context.addIssue({ code: "custom", message: typeof result === "string" ? result : "the DNS interval must be at least 1s" });

    return z.NEVER;
  }

  return result;
});

/** Config file keys of the providers, merged into the config file schema. */
export const providerFileKeys = {
  admin: addressKey(parseAdminAddress).optional(),
  adminAllowPublic: z.boolean().optional(),
  adminTokenFile: z.string().min(1).optional(),
  metrics: addressKey(parseMetricsAddress).optional(),
  watchConfig: z.boolean().optional(),
  stateFile: z.string().min(1).optional(),
  dns: z
    .strictObject({
      names: z.array(dnsName).max(100).optional(),
      srv: z.array(srvName).max(100).optional(),
      resolver: z.union([resolver, z.array(resolver).min(1)]).optional(),
      interval: interval.optional(),
    })
    .optional(),
};

type ProviderFileKeys = { [K in keyof typeof providerFileKeys]?: z.output<(typeof providerFileKeys)[K]> };

/** Converts the validated provider keys of a config file to `ProviderFileConfig`. */
export function toProviderFileConfig(file: ProviderFileKeys): ProviderFileConfig {
  const resolvers = file.dns?.resolver;

  return {
    admin: file.admin,
    adminAllowPublic: file.adminAllowPublic,
    adminTokenFile: file.adminTokenFile,
    metrics: file.metrics,
    watchConfig: file.watchConfig,
    stateFile: file.stateFile,
    dns: file.dns?.names,
    dnsSrv: file.dns?.srv,
    dnsResolvers: resolvers === undefined ? undefined : Array.isArray(resolvers) ? resolvers : [resolvers],
    dnsIntervalMs: file.dns?.interval,
  };
}

/**
 * Merges provider flags with the config file's provider keys and the defaults. A flag wins
 * over the file; a list given by flags replaces the file's list.
 */
export function resolveProviderSettings(flags: ProviderFlags, file: ProviderFileConfig = {}): ProviderSettings {
  const admin = flags.admin ?? file.admin;
  const nonEmpty = <T>(list: T[] | undefined): T[] | undefined => (list !== undefined && list.length > 0 ? list : undefined);

  return {
    admin: admin ?? defaultAdminAddress(),
    adminIsDefault: admin === undefined,
    adminAllowPublic: flags.adminAllowPublic ?? file.adminAllowPublic ?? false,
    adminTokenFile: flags.adminTokenFile ?? file.adminTokenFile,
    metrics: flags.metrics ?? file.metrics ?? "off",
    watchConfig: flags.watchConfig ?? file.watchConfig ?? true,
    stateFile: flags.stateFile ?? file.stateFile,
    dns: {
      names: nonEmpty(flags.dns) ?? file.dns ?? [],
      srv: nonEmpty(flags.dnsSrv) ?? file.dnsSrv ?? [],
      resolvers: nonEmpty(flags.dnsResolvers) ?? file.dnsResolvers ?? [],
      intervalMs: flags.dnsIntervalMs ?? file.dnsIntervalMs ?? DEFAULT_DNS_INTERVAL_MS,
    },
  };
}
