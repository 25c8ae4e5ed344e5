import { type AdminCommandOutput, PROCESS_OUTPUT, requestAdmin, runAdminCommand } from "./admin-client.ts";
import { ADMIN_FLAGS_HELP, checkBackendId, parseBackendAdminArgs } from "./admin-command-args.ts";
import type { BackendStateChange } from "./backend-states.ts";
import type { CliOptions } from "./cli.ts";
import { describeSlowStartGrowth } from "./slow-start.ts";

/** The commands that change a backend's state. */
export type BackendStateCommand = "disable" | "enable";

/** Help lines of `tinylb disable` and `tinylb enable` in the main help text. */
export const BACKEND_STATE_HELP = `  tinylb disable ID [--close-connections] [--admin ADDR] [--admin-token-file FILE]
                                  take backend ID of a running balancer out of the rotation
  tinylb enable ID [--admin ADDR] [--admin-token-file FILE]
                                  put backend ID back into the rotation`;

/** Help text printed by `tinylb disable --help` and `tinylb enable --help`. */
export const BACKEND_STATE_COMMAND_HELP = `tinylb disable, tinylb enable: take a backend of a running balancer out of the rotation, or put it back

Usage:
  tinylb disable ID [--close-connections] [--admin ADDR] [--admin-token-file FILE]
  tinylb enable ID [--admin ADDR] [--admin-token-file FILE]

Sends PUT /v1/backends/ID/state to the balancer's admin API. ID may come from any provider
(flags, config file, DNS, Kubernetes, etcd or the admin API), and the provider is not
changed. A disabled backend gets no new clients in any thread and is not tried in failover,
but its open connections stay and its probes keep running. The state belongs to the id: it
stays when a provider changes the id's target, and is forgotten when the id leaves the set.
With --state-file, a restart disables the backend again; without it, a restart forgets the
state. The config file's backends[].disabled key also disables a backend.

Options:
  --close-connections      with disable: also close the connections opened for ID at once,
                           in every thread; other ids with the same target keep theirs
${ADMIN_FLAGS_HELP}
  -h, --help               print this help

Exit status: 0 when the balancer applied the state (also when ID was in it already), 1 when
no balancer responds or it responds with an error, such as for an ID not in its set, 2 for
a bad command line.`;

/** The flags each command accepts besides --help. */
const FLAGS: Record<BackendStateCommand, string[]> = {
  disable: ["--close-connections", "--admin", "--admin-token-file"],
  enable: ["--admin", "--admin-token-file"],
};

/**
 * Parses the arguments of `tinylb disable` or `tinylb enable`, the command word first.
 * Returns an error message for a bad command line.
 */
export function parseBackendStateArgs(argv: readonly string[]): CliOptions | string {
  const command = argv[0] as BackendStateCommand;
  const parsed = parseBackendAdminArgs(argv, FLAGS[command], "one backend id", 1);
  if (typeof parsed === "string") {
    return parsed;
  }
  if (parsed.options.command === "help") {
    return parsed.options;
  }

  const [id] = parsed.operands;

  return checkBackendId(id, `tinylb ${command} ID, such as tinylb ${command} api-1; tinylb status lists the ids`) ?? { ...parsed.options, backendId: id };
}

/**
 * Runs `tinylb disable` or `tinylb enable`: sends `PUT /v1/backends/{id}/state` to a running
 * balancer's admin API and prints one line saying what changed. Returns the exit code as
 * `tinylb status` does.
 */
export function runBackendStateCommand(cli: CliOptions, output: AdminCommandOutput = PROCESS_OUTPUT): Promise<number> {
  const command = cli.command as BackendStateCommand;
  const id = cli.backendId!;
  const body = command === "disable" ? { state: "disabled", ...(cli.closeConnections === true ? { closeConnections: true } : {}) } : { state: "enabled" };

  return runAdminCommand(command, cli, output, async (admin, tokenFile) => {
    const change = (await requestAdmin(admin, tokenFile, "PUT", `/v1/backends/${encodeURIComponent(id)}/state`, body)) as BackendStateChange;

    return describeStateChange(change) + "\n";
  });
}

/** Describes a state change in one line, such as `disabled backend "api-1" (10.0.0.11:6443): ...`. */
export function describeStateChange(change: BackendStateChange): string {
  const backend = `backend "${change.id}" (${change.target})`;
  if (change.state === "enabled") {
    if (!change.changed) {
      return `${backend} was enabled already; nothing changed`;
    }
    const slowStart = change.slowStartMs === undefined ? "" : `, ${describeSlowStartGrowth(change.slowStartMs)}`;

    return `enabled ${backend}: the rotation hands it out again${slowStart}`;
  }

  const closed = describeClosed(change.closedConnections);
  if (change.fromConfigFile === true) {
    const byFile = "the config file's disabled key disabled it already; it now stays disabled when a reload drops the key, until tinylb enable";

    return `${backend}: ${byFile}${closed === undefined ? "" : `, and ${closed}`}`;
  }
  if (!change.changed) {
    return `${backend} was disabled already; ${closed ?? "nothing changed"}`;
  }

  return `disabled ${backend}: it gets no new clients, and ${closed ?? "its open connections stay until they close"}`;
}

/** Describes the connections a disable closed, or returns undefined when closing them was not requested. */
function describeClosed(count: number | undefined): string | undefined {
  if (count === undefined) {
    return undefined;
  }
  if (count === 0) {
    return "it had no open connections to close";
  }

  return count === 1 ? "1 connection opened for it was closed" : `${count} connections opened for it were closed`;
}
