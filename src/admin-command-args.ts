import { BackendError, validateId } from "./backend.ts";
import type { CliOptions } from "./cli.ts";
import { applyProviderFlag } from "./provider-flags.ts";
import { flagName, parseSwitchArg } from "./switch-value.ts";
import { joinWords } from "./word-lists.ts";

/** Commands that change one backend through the admin API: `tinylb disable`, `enable`, `add` and `remove`. */
export type BackendAdminCommand = "disable" | "enable" | "add" | "remove";

/** Help lines of `--admin` and `--admin-token-file` in the help of the commands that talk to the admin API. */
export const ADMIN_FLAGS_HELP = `  --admin ADDR             the balancer's admin address: unix:/path or host:port (default
                           unix:/run/tinylb/admin.sock as root, else admin.sock in
                           $XDG_RUNTIME_DIR/tinylb or /tmp/tinylb-UID, as for the balancer)
  --admin-token-file FILE  send the bearer token in FILE, for a balancer that requires one`;

/** Each flag as an error message lists it, with its value. */
const FLAG_USAGE: Record<string, string> = { "--close-connections": "--close-connections", "--admin": "--admin ADDR", "--admin-token-file": "--admin-token-file FILE" };

/** The command line of a backend admin command, split into its options and its operands (the arguments that are not flags). */
export interface BackendAdminArgs {
  options: CliOptions;
  operands: string[];
}

/**
 * Parses the arguments of a backend admin command, the command word first. `flags` are the
 * flags it accepts besides --help, of which only `--close-connections` takes no value.
 * `operands` describes what it takes besides flags, such as "one backend id", and
 * `maxOperands` how many. Returns the help request as options with the command "help", or
 * an error message for a bad command line.
 */
export function parseBackendAdminArgs(argv: readonly string[], flags: readonly string[], operands: string, maxOperands: number): BackendAdminArgs | string {
  const command = argv[0] as BackendAdminCommand;
  const options: CliOptions = { command, listen: [], backends: [] };
  const found: string[] = [];
  const args = argv.slice(1);
  while (args.length > 0) {
    const arg = args.shift()!;
    if (arg === "-h" || flagName(arg) === "--help") {
      const parsed = parseSwitchArg(arg);
      if (typeof parsed === "string") {
        return parsed;
      }
      if (parsed.on) {
        return { options: { ...options, command: "help", helpFor: command }, operands: [] };
      }
      continue;
    }

    const equals = arg.indexOf("=");
    const flag = flagName(arg);
    if (!flag.startsWith("-")) {
      if (found.length === maxOperands) {
        return `unexpected argument "${arg}": tinylb ${command} takes ${operands}`;
      }
      found.push(arg);
      continue;
    }
    if (!flags.includes(flag)) {
      return `${flag} is not valid with tinylb ${command}, which takes ${joinWords(flags.map((name) => FLAG_USAGE[name]!), "and")}`;
    }
    if (flag === "--close-connections") {
      const parsed = parseSwitchArg(arg);
      if (typeof parsed === "string") {
        return parsed;
      }
      options.closeConnections = parsed.on;
      continue;
    }

    const inline = equals > 0;
    if (!inline && (args.length === 0 || args[0]!.startsWith("--"))) {
      return `${flag} needs a value`;
    }
    const problem = applyProviderFlag((options.providers ??= {}), flag, inline ? arg.slice(equals + 1) : args.shift()!, command);
    if (problem !== undefined) {
      return problem;
    }
  }

  return { options, operands: found };
}

/**
 * Returns an error message when the backend id is missing or invalid. `usage` is the
 * command line to show for a missing id, such as `tinylb disable ID, such as tinylb disable api-1`.
 */
export function checkBackendId(id: string | undefined, usage: string): string | undefined {
  if (id === undefined) {
    return `missing backend id: use ${usage}`;
  }
  try {
    validateId(id);
  } catch (error) {
    return (error as BackendError).message;
  }

  return undefined;
}
