#!/usr/bin/env bun
// First, so that its SIGHUP handler is in place before the other modules load.
import "./early-hangup.ts";
import { AddressError } from "./address.ts";
import { BackendError } from "./backend.ts";
import { BACKEND_COMMAND_HELP, runBackendCommand } from "./backend-command.ts";
import { BACKEND_STATE_COMMAND_HELP, runBackendStateCommand } from "./backend-state-command.ts";
import { CHECK_COMMAND_HELP, checkConfig } from "./check-command.ts";
import { type CliOptions, HELP, parseArgs, UsageError } from "./cli.ts";
import { ConfigError } from "./config.ts";
import { CONFIG_COMMAND_HELP, runConfigCommand } from "./config-command.ts";
import { runDemo } from "./demo.ts";
import { ListenError } from "./listener.ts";
import { STATUS_COMMAND_HELP } from "./provider-flags.ts";
import { errorText, escapeControlCharacters, Logger } from "./logger.ts";
import { readFileLogFormat } from "./file-log-format.ts";
import { DRAIN_TIMEOUT_MS, drainProcessOutput } from "./process-output.ts";
import { runBalancer } from "./run-command.ts";
import { runStatus } from "./status-command.ts";
import { versionLine } from "./version.ts";
import { logUncaughtErrors } from "./uncaught-errors.ts";

/** Exit code for a bad command line or config file. */
const EXIT_USAGE = 2;
/** Exit code for a listener that cannot be bound. */
const EXIT_LISTEN = 1;
/** Exit code for any other failure at start-up. */
const EXIT_FAILURE = 1;

/** How long the exit waits for the output's readers: bounded for a balancer, unbounded for one-shot commands. */
let outputTimeoutMs: number | undefined;

async function main(argv: string[]): Promise<number> {
  const logger = new Logger();
  guardProcess(logger);

  let cli: CliOptions | undefined;
  try {
    cli = parseArgs(argv);
    // So that a start that fails before its settings are read still logs in the format asked for.
    logger.format = cli.logFormat ?? logger.format;
    switch (cli.command) {
      case "help":
        process.stdout.write(helpText(cli.helpFor) + "\n");

        return 0;
      case "version":
        process.stdout.write(versionLine() + "\n");

        return 0;
      case "demo":
        outputTimeoutMs = DRAIN_TIMEOUT_MS;

        return await runDemo(cli, logger);
      case "status":
        return await runStatus(cli);
      case "config":
        return await runConfigCommand(cli);
      case "disable":
      case "enable":
        return await runBackendStateCommand(cli);
      case "add":
      case "remove":
        return await runBackendCommand(cli);
      case "check": {
        // Checked before process.stdout is first touched, because Bun then opens a descriptor
        // for it, which the descriptor check would count although a start never opens it.
        const summary = checkConfig(cli, logger);
        process.stdout.write(summary + "\n");

        return 0;
      }
      case "run":
        outputTimeoutMs = DRAIN_TIMEOUT_MS;

        return await (await runBalancer(cli, logger)).exited;
    }
  } catch (error) {
    const command = ["status", "config", "check", "disable", "enable", "add", "remove"].includes(argv[0] ?? "") ? `${argv[0]} ` : "";
    // A check reports its error as a start with the same settings would, since it may write
    // to the balancer's log, as the ExecReload of examples/tinylb.service does.
    const startLike = cli?.command === "run" || cli?.command === "check";
    // A config file that parses but fails validation still names the format of its own log.
    if (startLike && cli?.logFormat === undefined && cli?.configPath !== undefined) {
      logger.format = readFileLogFormat(cli.configPath) ?? logger.format;
    }
    // A balancer's log may be read by a JSON log collector, which should get its last line too.
    const msg = cli?.command === "check" ? "config check failed" : "start failed";
    const json = startLike && logger.format === "json" ? { log: logger.with({ component: "main" }), msg } : undefined;

    return reportStartupError(error, `tinylb ${command}--help`, json);
  }
}

/** Returns the help text of a command, or the main help. */
function helpText(command: CliOptions["helpFor"]): string {
  switch (command) {
    case "check":
      return CHECK_COMMAND_HELP;
    case "status":
      return STATUS_COMMAND_HELP;
    case "config":
      return CONFIG_COMMAND_HELP;
    case "disable":
    case "enable":
      return BACKEND_STATE_COMMAND_HELP;
    case "add":
    case "remove":
      return BACKEND_COMMAND_HELP;
    default:
      return HELP;
  }
}

/**
 * Writes a start-up error to stderr and returns the exit code; `help` names the help that
 * covers the command. With `json`, the error is one JSON log line instead, which has the
 * fixed message `json.msg` and the error in `err`, as the balancer's runtime errors have.
 */
function reportStartupError(error: unknown, help: string, json?: { log: Logger; msg: string }): number {
  const [text, code] = describeStartupError(error, help);
  if (json === undefined) {
    process.stderr.write(`tinylb: ${escapeControlCharacters(text)}\n`);
  } else {
    json.log.error(json.msg, { err: text, exitCode: code });
  }

  return code;
}

/** Returns the message of a start-up error and the exit code it gets. */
function describeStartupError(error: unknown, help: string): [string, number] {
  if (error instanceof UsageError || error instanceof AddressError || error instanceof BackendError) {
    return [`${error.message}; see ${help}`, EXIT_USAGE];
  }
  if (error instanceof ConfigError) {
    return [error.message, EXIT_USAGE];
  }
  if (error instanceof ListenError) {
    return [error.message, EXIT_LISTEN];
  }

  return [`invariant violated: start-up failed: ${errorText(error)}`, EXIT_FAILURE];
}

/** Keeps the balancer alive when a bug escapes a handler: one broken connection must not stop the rest. */
function guardProcess(logger: Logger): void {
  const log = logger.with({ component: "main" });
  // SIGUSR1 and SIGUSR2 would end the process without draining (their default action), and
  // tinylb gives them no meaning, so a stray one (such as a log rotation script's) is ignored.
  for (const signal of ["SIGUSR1", "SIGUSR2"] as const) {
    process.on(signal, () => log.info(`${signal} received and ignored; SIGHUP reloads the config, SIGTERM stops tinylb`));
  }
  logUncaughtErrors(() => log);
}

// process.exit() drops output a pipe has not taken yet, so both streams are drained first.
const exitCode = await main(process.argv.slice(2));
process.exitCode = await drainProcessOutput(exitCode, outputTimeoutMs);
process.exit();
