import { formatAddress } from "./address.ts";
import type { CliOptions } from "./cli.ts";
import { MAX_CONFIG_BYTES } from "./config.ts";
import { warnIgnoredDisabledKey } from "./config-disabled-marks.ts";
import { flagShadowedIds, FlagShadowedKeysLog } from "./flag-shadowed-entries.ts";
import type { Logger } from "./logger.ts";
import { describeProxyProtocol, usesProxyProtocol } from "./proxy-protocol.ts";
import { describeSlowStart, usesSlowStart } from "./slow-start-setting.ts";
import { readRegularFile } from "./regular-file.ts";
import { resolveSettings, type Settings } from "./settings.ts";
import { checkStartSettings, listenPermissionProblems, logSettingsWarnings } from "./start-checks.ts";
import { checkDescriptorRoom } from "./start-descriptors.ts";
import { stateFileAccessProblems } from "./state-file-access.ts";
import { joinWords } from "./word-lists.ts";

/** Help lines of `tinylb check` in the main help text. */
export const CHECK_HELP = `  tinylb check --config FILE [options]
                                  validate the settings a start would use, without starting`;

/** Help text printed by `tinylb check --help`. */
export const CHECK_COMMAND_HELP = `tinylb check: validate a config file and flags without starting a balancer

Usage:
  tinylb check --config FILE [options]
  tinylb check --listen ADDR... --backend ID=TARGET... [options]

Takes every option of a start (see tinylb --help) and validates them as a start does: the
config file's syntax, keys and values, the flags, clashing listen, admin and metrics
addresses, backends that target a listen address, the probe settings and the files they
read, the admin address and token file, the state file's folder, a state file path that
names a file read or a socket bound, the Kubernetes and etcd credentials, and a descriptor
limit (ulimit -n) too low for the threads, the probes and one connection.
It also rejects an admin API or metrics address that the user running it may not bind: a
TCP port below net.ipv4.ip_unprivileged_port_start (1024 by default) without root or
CAP_NET_BIND_SERVICE, or a Unix socket in a folder that the user cannot write and search.
It warns, and still exits 0, about such a listen address, since systemd may pass its socket
bound (socket activation), and when the user running it cannot write the state file's folder
or read the state file, since a start then runs but cannot save or load it. It binds no
listener, admin API or metrics server, dials no backend, resolves no DNS name and writes no
file. So it cannot tell whether a listen address will be free when tinylb starts.

On success it prints one line, such as: config OK: 3 backends, 1 listener (tinylb.yaml)

Exit status: 0 when the settings are valid, 2 for a bad command line or config, and 1 when
an admin API or metrics address cannot be bound by this user or the folder of a Unix socket
listen address is missing or a file, each with the error a failing start prints on stderr.`;

/**
 * Validates the settings of a start as `runBalancer` does before it binds anything, and
 * returns the summary line to print. Warnings that a start would log about the settings
 * alone are logged too.
 *
 * @throws {ConfigError} for invalid settings, with the message a failing start prints.
 */
export function checkConfig(cli: CliOptions, logger: Logger): string {
  const settings = resolveSettings(cli);
  logger.level = settings.logLevel;
  logger.format = settings.logFormat;
  checkStartSettings(settings, cli);
  checkDescriptorRoom(settings, cli);
  for (const problem of listenPermissionProblems(settings)) {
    logger.with({ component: "main" }).warn(problem);
  }
  logSettingsWarnings(settings, logger);
  logIgnoredDisabledKeys(settings, cli, logger);
  new FlagShadowedKeysLog(cli, logger).report(settings.file);
  logStateFileWarnings(settings, logger);
  logEmptyConfigWarning(cli.configPath, logger);

  return checkSummary(settings, cli.configPath);
}

/**
 * Logs each `disabled` key of a file entry that a `--backend` flag replaces, with the warning
 * that a start logs when the file provider publishes the file.
 */
function logIgnoredDisabledKeys(settings: Settings, cli: CliOptions, logger: Logger): void {
  const disabled = new Set(settings.file.disabledBackends);
  for (const id of flagShadowedIds(settings.file, cli)) {
    if (disabled.has(id)) {
      // The --backend flags are the provider "static", which takes precedence over the file.
      warnIgnoredDisabledKey(logger, id, "static");
    }
  }
}

/**
 * Logs what keeps the user running the check from writing or reading the state file. A
 * start logs no such warning, since its first write and its load report the failures.
 */
function logStateFileWarnings(settings: Settings, logger: Logger): void {
  const path = settings.providers.stateFile;
  if (path === undefined) {
    return;
  }
  for (const problem of stateFileAccessProblems(path)) {
    logger.with({ component: "main" }).warn(problem, { file: path });
  }
}

/**
 * Logs that the config file is empty. A start takes its settings from the flags alone, and
 * its file watch rejects the empty file, as one still being written, until a good version is saved.
 */
function logEmptyConfigWarning(path: string | undefined, logger: Logger): void {
  if (path === undefined || readRegularFile(path, MAX_CONFIG_BYTES).toString("utf8").trim() !== "") {
    return;
  }
  logger.with({ component: "main" }).warn("config file is empty: a start serves no backends from it until a good version is saved", { file: path });
}

/**
 * Describes valid settings in one line: the backends of the flags and the file, the
 * listeners, the providers that add backends while tinylb runs, the metrics server's address,
 * the PROXY protocol and slow start settings when they are on, and the config file.
 */
export function checkSummary(settings: Settings, configPath?: string): string {
  const parts = [counted(settings.backends.size, "backend"), counted(settings.listen.length, "listener")];
  const dynamic = dynamicProviders(settings);
  if (dynamic.length > 0) {
    parts.push(`backends also from ${joinWords(dynamic, "and")}`);
  }
  if (settings.providers.metrics !== "off") {
    parts.push(`metrics on ${formatAddress(settings.providers.metrics)}`);
  }
  if (usesProxyProtocol(settings.proxyProtocol)) {
    parts.push(`PROXY protocol ${describeProxyProtocol(settings.proxyProtocol)}`);
  }
  if (usesSlowStart(settings.slowStart)) {
    parts.push(`slow start ${describeSlowStart(settings.slowStart)}`);
  }
  const source = configPath === undefined ? "" : ` (${configPath})`;

  return `config OK: ${parts.join(", ")}${source}`;
}

/**
 * Names the providers whose backends are known only once tinylb runs. The admin API is left
 * out: it is on by default, and its backends are added by hand.
 */
function dynamicProviders(settings: Settings): string[] {
  const names: string[] = [];
  const dns = settings.providers.dns;
  if (dns.names.length > 0 || dns.srv.length > 0) {
    names.push("DNS");
  }
  if (settings.kubernetes !== undefined) {
    names.push("Kubernetes");
  }
  if (settings.etcd !== undefined) {
    names.push("etcd");
  }

  return names;
}

function counted(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}
