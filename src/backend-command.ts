import { type AdminCommandOutput, PROCESS_OUTPUT, requestAdmin, runAdminCommand } from "./admin-client.ts";
import { ADMIN_FLAGS_HELP, checkBackendId, parseBackendAdminArgs } from "./admin-command-args.ts";
import type { CliOptions } from "./cli.ts";
import { describeSlowStartGrowth } from "./slow-start.ts";

/** The commands that add, retarget or remove a backend of the admin API provider. */
export type BackendCommand = "add" | "remove";

/** Help lines of `tinylb add` and `tinylb remove` in the main help text. */
export const BACKEND_HELP = `  tinylb add ID TARGET [--admin ADDR] [--admin-token-file FILE]
                                  add backend ID that dials TARGET to a running balancer, or
                                  change its target; kept in memory and the --state-file only
  tinylb remove ID [--admin ADDR] [--admin-token-file FILE]
                                  remove backend ID, added by tinylb add or the admin API`;

/** Help text printed by `tinylb add --help` and `tinylb remove --help`. */
export const BACKEND_COMMAND_HELP = `tinylb add, tinylb remove: add, retarget or remove a backend of a running balancer

Usage:
  tinylb add ID TARGET [--admin ADDR] [--admin-token-file FILE]
  tinylb remove ID [--admin ADDR] [--admin-token-file FILE]

tinylb add sends PUT /v1/backends/ID with {"target": TARGET} to the balancer's admin API. It
adds backend ID, or changes its target when ID is there already. TARGET is host:port,
[ipv6]:port or unix:/path. tinylb remove sends DELETE /v1/backends/ID. Both change only the
backends of the admin API provider (provider "api" in tinylb status). tinylb add rejects an
ID that another provider (flags, config file, DNS, Kubernetes or etcd) publishes with
another target, and tinylb remove rejects every ID of another provider: change those there.
When the flags or the config file publish ID with the same TARGET, their entry takes
precedence and keeps serving ID, and tinylb add says so. The admin API's entry serves once
they no longer publish ID. When another provider still publishes ID after tinylb remove,
its entry keeps serving ID, and tinylb remove says so.

The admin API's backends exist only in the balancer's memory and, when it runs with
--state-file FILE, in that file. Without a state file, a restart forgets them.

When a backend is removed or changes target, the connections to its old target are closed
at once, or drained with --on-removal drain, unless another id still dials that target.

Options:
${ADMIN_FLAGS_HELP}
  -h, --help               print this help

Exit status: 0 when the balancer applied the change (also when ID had TARGET already), 1
when no balancer responds or it responds with an error, such as for an invalid target, an
ID of another provider or an ID that is not the admin API's, 2 for a bad command line.`;

/** Each command's operands as its error messages describe them, and their maximum count. */
const OPERANDS: Record<BackendCommand, [string, number]> = {
  add: ["a backend id and a target", 2],
  remove: ["one backend id", 1],
};

/** The command line each command's missing-id error shows. */
const USAGE: Record<BackendCommand, string> = {
  add: "tinylb add ID TARGET, such as tinylb add api-4 10.0.0.14:6443",
  remove: "tinylb remove ID, such as tinylb remove api-4; tinylb status lists the ids",
};

/**
 * Parses the arguments of `tinylb add` or `tinylb remove`, the command word first. Returns
 * an error message for a bad command line. The target is checked by the balancer, which
 * also rejects its own listen addresses.
 */
export function parseBackendCommandArgs(argv: readonly string[]): CliOptions | string {
  const command = argv[0] as BackendCommand;
  const [operands, maxOperands] = OPERANDS[command];
  const parsed = parseBackendAdminArgs(argv, ["--admin", "--admin-token-file"], operands, maxOperands);
  if (typeof parsed === "string") {
    return parsed;
  }
  if (parsed.options.command === "help") {
    return parsed.options;
  }

  const [id, target] = parsed.operands;
  const problem = checkBackendId(id, USAGE[command]);
  if (problem !== undefined) {
    return problem;
  }
  if (command === "add" && target === undefined) {
    return `missing target: use ${USAGE.add}`;
  }

  return { ...parsed.options, backendId: id, target };
}

/** The response to `PUT /v1/backends/{id}`. */
interface BackendPutResponse {
  id: string;
  target: string;
  /** The id's target before the request, or null when the request added the id. A balancer from before this field sends none. */
  previousTarget?: string | null;
  /**
   * The provider and target of the entry that serves the id, which is another provider's when
   * that provider takes precedence over the admin API's. A balancer from before this field sends none.
   */
  servedBy?: { provider: string; target: string } | null;
  /** Window of the slow start the id began, in milliseconds. Absent when it began none. */
  slowStartMs?: number;
}

/** The response to `DELETE /v1/backends/{id}`: the admin API's entry that was removed, and the entry that serves the id now, or null. */
type BackendDeleteResponse = Pick<BackendPutResponse, "id" | "target" | "servedBy">;

/** Name of the admin API provider in the union, in logs and in `tinylb status`. */
const API_PROVIDER = "api";

/**
 * Runs `tinylb add` or `tinylb remove`: sends `PUT` or `DELETE /v1/backends/{id}` to a
 * running balancer's admin API and prints one line saying what changed. Returns the exit
 * code as `tinylb status` does.
 */
export function runBackendCommand(cli: CliOptions, output: AdminCommandOutput = PROCESS_OUTPUT): Promise<number> {
  const command = cli.command as BackendCommand;
  const path = `/v1/backends/${encodeURIComponent(cli.backendId!)}`;

  return runAdminCommand(command, cli, output, async (admin, tokenFile) => {
    if (command === "add") {
      const response = (await requestAdmin(admin, tokenFile, "PUT", path, { target: cli.target })) as BackendPutResponse;

      return describePut(response) + "\n";
    }

    const removed = (await requestAdmin(admin, tokenFile, "DELETE", path)) as BackendDeleteResponse;

    return describeDelete(removed) + "\n";
  });
}

/**
 * Describes the response to `DELETE /v1/backends/{id}` in one line, and which provider's entry
 * still serves the id when another provider publishes it too.
 */
export function describeDelete({ id, target, servedBy }: BackendDeleteResponse): string {
  const removed = `removed backend "${id}" (${target})`;
  if (servedBy === undefined || servedBy === null || servedBy.provider === API_PROVIDER) {
    return removed;
  }

  return `removed the admin API's backend "${id}" (${target}); provider "${servedBy.provider}" still publishes "${id}", so its entry (${servedBy.target}) keeps serving`;
}

/**
 * Describes the response to `PUT /v1/backends/{id}` in one line: added, retargeted or
 * unchanged, and which provider's entry serves the id when it is not the admin API's.
 */
export function describePut(response: BackendPutResponse): string {
  const { id, servedBy } = response;
  const slowStart = response.slowStartMs === undefined ? "" : `, ${describeSlowStartGrowth(response.slowStartMs)}`;
  const change = describeChange(response) + slowStart;
  if (servedBy === undefined || servedBy === null || servedBy.provider === API_PROVIDER) {
    return change;
  }

  return `${change}; provider "${servedBy.provider}" publishes "${id}" too and takes precedence, so its entry (${servedBy.target}) serves`;
}

function describeChange({ id, target, previousTarget }: BackendPutResponse): string {
  if (previousTarget === undefined) {
    return `backend "${id}" dials ${target}`;
  }
  if (previousTarget === null) {
    return `added backend "${id}" (${target})`;
  }
  if (previousTarget === target) {
    return `backend "${id}" dials ${target} already; nothing changed`;
  }

  return `retargeted backend "${id}" from ${previousTarget} to ${target}`;
}
