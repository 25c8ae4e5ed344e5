import { type Address, AddressError, parseListenAddress } from "./address.ts";
import { type Backend, BackendError, createBackend } from "./backend.ts";
import { BACKEND_HELP, parseBackendCommandArgs } from "./backend-command.ts";
import { BACKEND_STATE_HELP, parseBackendStateArgs } from "./backend-state-command.ts";
import { BALANCE_MODES, type BalanceMode } from "./backend-selector.ts";
import { CHECK_HELP } from "./check-command.ts";
import { CONFIG_HELP } from "./config-command.ts";
import { checkKeepalive, MAX_CONNECTION_CAP, MAX_WORKERS } from "./config.ts";
import { parseDuration } from "./duration.ts";
import { parseIdleTimeout } from "./idle-timeout.ts";
import type { HealthConfig } from "./health-config.ts";
import { applyHealthFlag, HEALTH_FLAGS, HEALTH_HELP } from "./health-flags.ts";
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from "./logger.ts";
import { applyProviderFlag, applyProviderSwitch, checkStatusArgs, PROVIDER_FLAGS, PROVIDER_HELP, PROVIDER_SWITCHES, STATUS_HELP } from "./provider-flags.ts";
import type { ProviderFlags } from "./provider-settings.ts";
import { PROXY_PROTOCOL_MODES, type ProxyProtocolMode } from "./proxy-protocol.ts";
import { withRejectedValue } from "./rejected-value.ts";
import { parseSlowStart } from "./slow-start-setting.ts";
import { closestName } from "./suggestions.ts";
import { flagName, parseSwitchArg } from "./switch-value.ts";
import { joinWords } from "./word-lists.ts";

/** A command line that cannot be understood; main prints it on one line and exits 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Options parsed from the command line. */
export interface CliOptions {
  command: "run" | "check" | "demo" | "status" | "config" | "disable" | "enable" | "add" | "remove" | "help" | "version";
  listen: Address[];
  backends: Backend[];
  configPath?: string;
  connectTimeoutMs?: number;
  keepaliveMs?: number;
  shutdownGraceMs?: number;
  /** Idle timeout in milliseconds; 0 is off. */
  idleTimeoutMs?: number;
  maxConnections?: number;
  maxConnectionsPerBackend?: number;
  /** Event loops that accept and relay: the main thread plus `workers - 1` worker threads. */
  workers?: number;
  /** Balance mode of new clients. */
  balance?: BalanceMode;
  /** `--proxy-protocol`: the PROXY protocol mode of every backend without one of its own. */
  proxyProtocol?: ProxyProtocolMode;
  /** `--slow-start`: the slow start window of every backend without one of its own, in milliseconds, or 0 for off. */
  slowStartMs?: number;
  /** Probe, failover and removal flags. */
  health?: HealthConfig;
  /** Admin API, metrics server, config watch, state file and DNS flags; `tinylb status` reads `admin` too. */
  providers?: ProviderFlags;
  /** `tinylb status --json` and `tinylb config --json`. */
  json?: boolean;
  /** The backend id of `tinylb disable ID`, `tinylb enable ID`, `tinylb add ID TARGET` and `tinylb remove ID`. */
  backendId?: string;
  /** The target of `tinylb add ID TARGET`, as given; the balancer checks it. */
  target?: string;
  /** `tinylb disable --close-connections`. */
  closeConnections?: boolean;
  /** With the help command: the command whose help was requested, such as `tinylb status --help`. */
  helpFor?: "check" | "status" | "config" | "disable" | "enable" | "add" | "remove";
  logLevel?: LogLevel;
  logFormat?: LogFormat;
}

/** Help text printed by `tinylb --help`. */
export const HELP = `tinylb: a small layer-4 (TCP and Unix socket) load balancer

Usage:
  tinylb --listen ADDR... --backend ID=TARGET... [options]
  tinylb --config FILE [options]
${CHECK_HELP}
  tinylb demo [--listen ADDR] [--admin ADDR]
                                  start four local demo backends, three of them behind a balancer
                                  with an admin API (default: a socket in a new temp folder)
${STATUS_HELP}
${CONFIG_HELP}
${BACKEND_STATE_HELP}
${BACKEND_HELP}
  tinylb --help | --version

Addresses are host:port, [ipv6]:port or unix:/path. A listen host name binds one of its
addresses (localhost: usually only 127.0.0.1), so give each address clients use, such as
--listen 127.0.0.1:7443 --listen [::1]:7443. A value may also follow an equals sign
(--listen=ADDR), and a flag without a value may be written --json=true or --json=false.

Options:
  --listen ADDR            accept clients on ADDR; repeat for several listeners
  --backend ID=TARGET      add backend ID that dials TARGET; repeat for several
  --config FILE            read settings from FILE (.yaml, .yml, .json, .jsonc or .toml);
                           saves to it are applied as they happen, and SIGHUP re-reads it
  --connect-timeout DUR    give up on a backend connect after DUR (default 3s)
  --keepalive DUR          start TCP keepalive probes after DUR idle, in whole seconds from 1s
                           to 32767s (the kernel's limits); 0 turns them off (default 30s)
  --shutdown-grace DUR     on SIGTERM or SIGINT, let open connections finish for up to DUR,
                           then close them (default 10s); a second signal closes them at once
  --idle-timeout DUR       reset a connection that carries no byte in either direction for
                           DUR, at least 1s; off or 0 keeps idle connections open (default off)
  --max-connections N      close new clients at once while N connections are open or dialing;
                           0 means no cap (default 0)
  --max-connections-per-backend N
                           skip a backend while N connections to its target are open or
                           dialing, and close the client when every backend is at N; 0 means
                           no cap (default 0)
  --workers N              accept and relay on N threads that share the TCP listen ports
                           (SO_REUSEPORT), each with its own connections (default 1); the
                           threads share one rotation and the counts both caps apply to
  --balance MODE           roundrobin: send new clients to the backends in turn; leastconn:
                           to the backend with the fewest connections open or dialing, for
                           long-lived connections such as watches (default roundrobin)
  --proxy-protocol MODE    off, v1 or v2: send each backend a PROXY protocol header with the
                           client's address and port before the client's bytes, as
                           HAProxy's send-proxy (v1) and send-proxy-v2 do (default off)
  --slow-start DUR         give a backend that turns healthy again, is enabled again, or joins
                           the set or changes target while tinylb runs a share of new clients
                           that grows from 10% to all of it over DUR, at least 1s; off or 0
                           turns slow start off (default off)
${HEALTH_HELP}
${PROVIDER_HELP}
  --log-level LEVEL        debug, info, warn or error (default info)
  --log-format FORMAT      text or json lines on stderr (default text)
  -h, --help               print this help
  -V, --version            print the version

Durations are a number and a unit: 500ms, 3s, 2m, 1h.

Flags and file: a flag wins over the same setting in the file. --listen flags replace the
file's listen list. --backend flags are added to the file's backends, and a flag's target
wins when both name the same id (logged as a conflict). Backends from the file, the admin
API, DNS, Kubernetes and etcd join one set; on the same id, flags win over the file, the
file over the admin API, the admin API over DNS, DNS over Kubernetes, and Kubernetes over etcd.

Exit status: 0 after a clean shutdown, 1 when a listener cannot be bound or start-up fails
otherwise, 2 for a bad command line or config file.

Signals: SIGHUP re-reads the config file and the admin token file; SIGTERM and SIGINT drain
and stop; SIGUSR1 and SIGUSR2 are logged and ignored.`;

const VALUE_FLAGS = new Set([
  "--listen",
  "--backend",
  "--config",
  "--connect-timeout",
  "--keepalive",
  "--shutdown-grace",
  "--idle-timeout",
  "--max-connections",
  "--max-connections-per-backend",
  "--workers",
  "--balance",
  "--proxy-protocol",
  "--slow-start",
  "--log-level",
  "--log-format",
  ...HEALTH_FLAGS,
]);

/** The end of the usage error for a flag that `tinylb demo` does not take. */
const DEMO_FLAGS_HINT = "which takes only --listen ADDR and --admin ADDR";

/**
 * Parses the arguments after the program name.
 *
 * @throws {UsageError} naming the flag and value that are wrong and what is valid.
 */
export function parseArgs(argv: readonly string[]): CliOptions {
  const options: CliOptions = { command: "run", listen: [], backends: [] };
  const args = [...argv];
  // `check` takes every flag of a start, so only the command word is removed.
  if (args[0] === "demo" || args[0] === "check") {
    options.command = args[0];
    args.shift();
  }
  if (args[0] === "disable" || args[0] === "enable" || args[0] === "add" || args[0] === "remove") {
    const parsed = args[0] === "add" || args[0] === "remove" ? parseBackendCommandArgs(args) : parseBackendStateArgs(args);
    if (typeof parsed === "string") {
      throw new UsageError(parsed);
    }

    return parsed;
  }
  if (args[0] === "status" || args[0] === "config") {
    options.command = args[0];
    const problem = checkStatusArgs(args);
    if (problem !== undefined) {
      throw new UsageError(problem);
    }
    args.shift();
  }

  while (args.length > 0) {
    const arg = args.shift()!;
    if (arg === "-h" || arg === "--help") {
      if (options.command === "status" || options.command === "config" || options.command === "check") {
        options.helpFor = options.command;
      }
      options.command = "help";

      return options;
    }
    if (arg === "-V" || arg === "--version") {
      options.command = "version";

      return options;
    }

    const equals = arg.indexOf("=");
    const flag = flagName(arg);
    if (PROVIDER_SWITCHES.has(flag)) {
      if (options.command === "demo") {
        throw new UsageError(`${flag} is not valid with tinylb demo, ${DEMO_FLAGS_HINT}`);
      }
      const parsed = parseSwitchArg(arg);
      if (typeof parsed === "string") {
        throw new UsageError(parsed);
      }
      if (flag === "--json" && options.command !== "status" && options.command !== "config") {
        throw new UsageError("--json is valid only with tinylb status and tinylb config");
      }
      applyProviderSwitch((options.providers ??= {}), options, flag, parsed.on);
      continue;
    }
    if (flag === "--help" || flag === "--version") {
      // --help and --version alone returned above; with =true they do the same, with =false nothing.
      const parsed = parseSwitchArg(arg);
      if (typeof parsed === "string") {
        throw new UsageError(parsed);
      }
      if (parsed.on) {
        args.unshift(flag);
      }
      continue;
    }

    if (!VALUE_FLAGS.has(flag) && !PROVIDER_FLAGS.has(flag)) {
      throw new UsageError(describeUnknownArgument(arg, flag, argv.length - args.length - 1));
    }
    const inline = equals > 0 && flag !== arg;
    // A missing value must not swallow the next flag: `--connect-timeout --admin off`.
    if (!inline && (args.length === 0 || args[0]!.startsWith("--"))) {
      throw new UsageError(`${flag} needs a value`);
    }
    const value = inline ? arg.slice(equals + 1) : args.shift()!;
    if (options.command === "demo" && flag !== "--listen" && flag !== "--admin") {
      throw new UsageError(`${flag} is not valid with tinylb demo, ${DEMO_FLAGS_HINT}`);
    }
    if (PROVIDER_FLAGS.has(flag)) {
      const problem = applyProviderFlag((options.providers ??= {}), flag, value, options.command);
      if (problem !== undefined) {
        throw new UsageError(problem);
      }
      continue;
    }
    applyFlag(options, flag, value);
  }

  return options;
}

/** Every flag and switch, for typo suggestions. */
const ALL_FLAGS = [...VALUE_FLAGS, ...PROVIDER_FLAGS, ...PROVIDER_SWITCHES, "--help", "--version"];

/** HAProxy keywords that people moving from HAProxy may try as flags, and tinylb's flag for each. */
const HAPROXY_TERMS = new Map([
  ["bind", "--listen"],
  ["server", "--backend"],
  ["maxconn", "--max-connections"],
  ["timeout-connect", "--connect-timeout"],
  ["timeout-client", "--idle-timeout"],
  ["timeout-server", "--idle-timeout"],
  ["inter", "--probe-interval"],
  ["nbthread", "--workers"],
  ["send-proxy", "--proxy-protocol v1"],
  ["send-proxy-v2", "--proxy-protocol v2"],
  ["slowstart", "--slow-start"],
]);

/** Commands that may come first, for typo suggestions. */
const COMMANDS = ["add", "check", "config", "demo", "disable", "enable", "remove", "status"];

/** The commands that take arguments, with them, for the hint to an argument out of place. */
const COMMAND_ARGUMENTS: Record<string, string> = { add: "add ID TARGET", disable: "disable ID", enable: "enable ID", remove: "remove ID" };

/** Describes an argument that is not a known flag; `index` is its position on the command line. */
function describeUnknownArgument(arg: string, flag: string, index: number): string {
  if (flag === "-v") {
    return "unknown flag -v (did you mean -V, --version?)";
  }
  if (flag.startsWith("-")) {
    const suggestion = closestName(flag, ALL_FLAGS) ?? HAPROXY_TERMS.get(flag.replace(/^-+/, "").toLowerCase());

    return `unknown flag ${flag}${suggestion === undefined ? "" : ` (did you mean ${suggestion}?)`}`;
  }
  if (index === 0) {
    const suggestion = closestName(arg, COMMANDS);

    return `unknown command "${arg}" (${suggestion === undefined ? `the commands are ${joinWords(COMMANDS, "and")}` : `did you mean ${suggestion}?`})`;
  }

  if (COMMANDS.includes(arg)) {
    return `unexpected argument "${arg}": put the command before the options, as in tinylb ${COMMAND_ARGUMENTS[arg] ?? arg} [options]`;
  }

  return `unexpected argument "${arg}"`;
}

function applyFlag(options: CliOptions, flag: string, value: string): void {
  switch (flag) {
    case "--listen":
      options.listen.push(parseListen(value));
      break;
    case "--backend":
      addBackendFlag(options.backends, parseBackendFlag(value));
      break;
    case "--config":
      if (value === "") {
        throw new UsageError("--config needs a file path");
      }
      options.configPath = value;
      break;
    case "--connect-timeout":
      options.connectTimeoutMs = parseDurationFlag(flag, value, 1);
      break;
    case "--keepalive":
      options.keepaliveMs = parseKeepaliveFlag(flag, value);
      break;
    case "--shutdown-grace":
      options.shutdownGraceMs = parseDurationFlag(flag, value, 0);
      break;
    case "--idle-timeout":
      options.idleTimeoutMs = parseOffOrDurationFlag(flag, value, parseIdleTimeout);
      break;
    case "--max-connections":
      options.maxConnections = parseCountFlag(flag, value);
      break;
    case "--max-connections-per-backend":
      options.maxConnectionsPerBackend = parseCountFlag(flag, value);
      break;
    case "--workers":
      options.workers = parseWorkersFlag(flag, value);
      break;
    case "--balance":
      options.balance = parseChoice(flag, value, BALANCE_MODES);
      break;
    case "--proxy-protocol":
      options.proxyProtocol = parseChoice(flag, value, PROXY_PROTOCOL_MODES);
      break;
    case "--slow-start":
      options.slowStartMs = parseOffOrDurationFlag(flag, value, parseSlowStart);
      break;
    case "--log-level":
      options.logLevel = parseChoice(flag, value, LOG_LEVELS);
      break;
    case "--log-format":
      options.logFormat = parseChoice(flag, value, LOG_FORMATS);
      break;
    default: {
      const problem = applyHealthFlag((options.health ??= {}), flag, value);
      if (problem !== undefined) {
        throw new UsageError(problem);
      }
    }
  }
}

function parseListen(value: string): Address {
  try {
    return parseListenAddress(value);
  } catch (error) {
    throw new UsageError(`--listen: ${(error as AddressError).message}`, { cause: error });
  }
}

function parseBackendFlag(value: string): Backend {
  const equals = value.indexOf("=");
  if (equals <= 0) {
    throw new UsageError(`--backend "${value}": expected ID=TARGET, such as api-1=10.0.0.1:6443`);
  }

  try {
    return createBackend(value.slice(0, equals), value.slice(equals + 1));
  } catch (error) {
    throw new UsageError(`--backend: ${(error as BackendError).message}`, { cause: error });
  }
}

/** Adds a `--backend` flag's backend, rejecting an id that an earlier flag already gave. */
function addBackendFlag(backends: Backend[], backend: Backend): void {
  const earlier = backends.find((other) => other.id === backend.id);
  if (earlier !== undefined) {
    throw new UsageError(`--backend ${backend.id}=${backend.target}: duplicate id "${backend.id}", already given as ${earlier.id}=${earlier.target}; ids must be unique`);
  }
  backends.push(backend);
}

function parseKeepaliveFlag(flag: string, value: string): number {
  const ms = parseDurationFlag(flag, value, 0);
  const problem = checkKeepalive(ms);
  if (problem !== undefined) {
    throw new UsageError(`${flag}: ${withRejectedValue(problem, value)}`);
  }

  return ms;
}

/** Parses the value of a flag that takes `off` or a duration, with `parse` of its setting, such as `parseIdleTimeout`. */
function parseOffOrDurationFlag(flag: string, value: string, parse: (text: string) => number | string): number {
  const result = parse(value);
  if (typeof result === "string") {
    throw new UsageError(`${flag}: ${result}`);
  }

  return result;
}

function parseDurationFlag(flag: string, value: string, minimumMs: number): number {
  const result = parseDuration(value);
  if (typeof result === "string") {
    throw new UsageError(`${flag}: ${result}`);
  }
  if (result < minimumMs) {
    throw new UsageError(`${flag}: ${withRejectedValue(`the duration must be at least ${minimumMs} ms`, value)}`);
  }

  return result;
}

function parseCountFlag(flag: string, value: string): number {
  if (!/^\d{1,8}$/.test(value) || Number(value) > MAX_CONNECTION_CAP) {
    throw new UsageError(`${flag} "${value}" is not valid; use a whole number from 0 to ${MAX_CONNECTION_CAP}`);
  }

  return Number(value);
}

function parseWorkersFlag(flag: string, value: string): number {
  if (!/^\d{1,3}$/.test(value) || Number(value) < 1 || Number(value) > MAX_WORKERS) {
    throw new UsageError(`${flag} "${value}" is not valid; use a whole number from 1 to ${MAX_WORKERS}`);
  }

  return Number(value);
}

function parseChoice<T extends string>(flag: string, value: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(value)) {
    throw new UsageError(`${flag} "${value}" is not valid; use one of ${choices.join(", ")}`);
  }

  return value as T;
}
