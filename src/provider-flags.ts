import type { AddressError } from "./address.ts";
import { parseDuration } from "./duration.ts";
import { checkSrvName, parseAdminAddress, parseAdminClientAddress, parseDnsName, parseMetricsAddress, parseResolver, type ProviderFlags } from "./provider-settings.ts";
import { withRejectedValue } from "./rejected-value.ts";

/** Provider flags that take a value. */
export const PROVIDER_FLAGS = new Set(["--admin", "--admin-token-file", "--metrics", "--state-file", "--dns", "--dns-srv", "--dns-resolver", "--dns-interval"]);

/** Provider flags without a value. */
export const PROVIDER_SWITCHES = new Set(["--admin-allow-public", "--no-watch-config", "--json"]);

/** Flags `tinylb status` and `tinylb config` accept. */
const STATUS_FLAGS = new Set(["--admin", "--admin-token-file", "--json"]);

/** Commands that connect to a running balancer's admin API rather than serve one. */
const ADMIN_CLIENT_COMMANDS = new Set(["status", "config", "disable", "enable", "add", "remove"]);

/** Flags that print the help or the version instead of running a command. */
const HELP_FLAGS = new Set(["-h", "--help", "-V", "--version"]);

/** Help lines of the provider flags, in the layout of the main help text. */
export const PROVIDER_HELP = `  --no-watch-config        apply config file changes only on SIGHUP, instead of watching the
                           file's folder for saves, renames and ConfigMap updates
  --admin ADDR             serve the admin API on ADDR: unix:/path (created with mode 0600) or a
                           loopback IP:port; off turns it off (default unix:/run/tinylb/admin.sock
                           as root, else admin.sock in $XDG_RUNTIME_DIR/tinylb or /tmp/tinylb-UID,
                           a folder of mode 0700 that only this user may own)
  --admin-token-file FILE  require the bearer token in FILE on every admin request
  --admin-allow-public     allow an admin address outside loopback; needs --admin-token-file
  --metrics ADDR           also serve GET and HEAD of /metrics, /healthz and /readyz on the TCP
                           address ADDR (IP:port), without a token, for scrapers such as Prometheus; any
                           address is allowed, since nothing there changes state; off turns it
                           off (default off)
  --dns NAME:PORT          add a backend for every A and AAAA address of NAME, re-resolved on an
                           interval; repeat for several names. Sends DNS queries only, so
                           /etc/hosts is not read
  --dns-srv NAME           add a backend for every address and port of NAME's SRV records
  --dns-resolver ADDR      ask the DNS server at ip, ip:port or [ipv6]:port (port 53 when none
                           is given) instead of the name servers in /etc/resolv.conf; repeat
                           for several
  --dns-interval DUR       time between DNS lookups (default 30s, at least 1s)
  --state-file FILE        save the running backend set to FILE and load it at start-up, so a
                           restart serves the last known backends until the providers answer`;

/** Help lines of `tinylb status`. */
export const STATUS_HELP = `  tinylb status [--admin ADDR] [--admin-token-file FILE] [--json]
                                  print the backends and listeners of a running balancer`;

/** Help lines of the options that `tinylb status` and `tinylb config` share. */
export const ADMIN_CLIENT_OPTIONS_HELP = `  --admin ADDR             the balancer's admin address: unix:/path or host:port (default
                           unix:/run/tinylb/admin.sock as root, else admin.sock in
                           $XDG_RUNTIME_DIR/tinylb or /tmp/tinylb-UID, as for the balancer)
  --admin-token-file FILE  send the bearer token in FILE, for a balancer that requires one
  --json                   print the admin API's JSON response instead of the table
  -h, --help               print this help`;

/** Help text printed by `tinylb status --help`. */
export const STATUS_COMMAND_HELP = `tinylb status: print the backends and listeners of a running balancer

Usage:
  tinylb status [--admin ADDR] [--admin-token-file FILE] [--json]

Requests GET /v1/backends from the balancer's admin API and prints a table of backends, then
the listeners, unhealthy and removed backends, and id conflicts.

Options:
${ADMIN_CLIENT_OPTIONS_HELP}

Exit status: 0 when the status was printed, 1 when no balancer responds or it responds with
an error, 2 for a bad command line.`;

/**
 * Applies a switch to the provider flags, or `--json` to the status options. `on` is false for
 * `--switch=false`, which sets the opposite explicitly, so that it wins over the config file.
 */
export function applyProviderSwitch(flags: ProviderFlags, status: { json?: boolean }, flag: string, on = true): void {
  switch (flag) {
    case "--admin-allow-public":
      flags.adminAllowPublic = on;
      break;
    case "--no-watch-config":
      flags.watchConfig = !on;
      break;
    case "--json":
      status.json = on;
      break;
  }
}

/**
 * Applies a provider flag with its value; returns an error message for an invalid value.
 *
 * @param command the command being parsed; `tinylb status`, `disable` and `enable` cannot use
 *   `--admin off`, so their errors do not offer it.
 */
export function applyProviderFlag(flags: ProviderFlags, flag: string, value: string, command?: string): string | undefined {
  switch (flag) {
    case "--admin":
      try {
        const client = command !== undefined && ADMIN_CLIENT_COMMANDS.has(command);
        flags.admin = client ? parseAdminClientAddress(value) : parseAdminAddress(value);
      } catch (error) {
        const off = command !== undefined && ADMIN_CLIENT_COMMANDS.has(command) ? "" : ", or off";
        const unixHint = value.startsWith("/") ? `; for a Unix socket, write unix:${value}` : "";

        return `--admin: ${(error as AddressError).message}${off}${unixHint}`;
      }
      break;
    case "--metrics":
      try {
        flags.metrics = parseMetricsAddress(value);
      } catch (error) {
        return `--metrics: ${(error as AddressError).message}, or off`;
      }
      break;
    case "--admin-token-file":
    case "--state-file":
      if (value === "") {
        return `${flag} needs a file path`;
      }
      if (flag === "--state-file") {
        flags.stateFile = value;
      } else {
        flags.adminTokenFile = value;
      }
      break;
    case "--dns": {
      const name = parseDnsName(value);
      if (typeof name === "string") {
        return `--dns: ${name}`;
      }
      (flags.dns ??= []).push(name);
      break;
    }
    case "--dns-srv": {
      const problem = checkSrvName(value);
      if (problem !== undefined) {
        return `--dns-srv: ${problem}`;
      }
      (flags.dnsSrv ??= []).push(value);
      break;
    }
    case "--dns-resolver": {
      const resolver = parseResolver(value);
      if (typeof resolver !== "string") {
        return `--dns-resolver: ${resolver.error}`;
      }
      (flags.dnsResolvers ??= []).push(resolver);
      break;
    }
    case "--dns-interval": {
      const ms = parseDuration(value);
      if (typeof ms === "string" || ms < 1000) {
        return `--dns-interval: ${typeof ms === "string" ? ms : withRejectedValue("the interval must be at least 1s", value)}`;
      }
      flags.dnsIntervalMs = ms;
      break;
    }
  }

  return undefined;
}

/**
 * Checks that `tinylb status` or `tinylb config`, the command in `argv[0]`, got only the flags
 * both take; returns an error message naming the first other one.
 */
export function checkStatusArgs(argv: readonly string[]): string | undefined {
  for (const arg of argv.slice(1)) {
    const flag = arg.includes("=") ? arg.slice(0, arg.indexOf("=")) : arg;
    if (flag.startsWith("-") && !STATUS_FLAGS.has(flag) && !HELP_FLAGS.has(flag)) {
      return `${flag} is not valid with tinylb ${argv[0]}; use --admin ADDR, --admin-token-file FILE or --json`;
    }
  }

  return undefined;
}
