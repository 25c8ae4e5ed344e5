/**
 * Shapes of the admin API responses that the commands `tinylb status`, `config`, `add`,
 * `remove`, `disable` and `enable` read. Something else on the admin address, such as another program,
 * a proxy, or an older or newer tinylb, may send other JSON. Checking it here gives one clear
 * error instead of a TypeError or a line with `undefined` in it.
 *
 * Objects are loose, so fields a newer balancer adds pass through (and `tinylb status --json`
 * prints them). A field is optional where the commands accept its absence, as from a balancer
 * older than that field.
 *
 * NOTE: the commands match a response to its schema by method and path, not by a schema they
 * pass. A field that a command starts to read without a fallback needs an entry here too.
 */
import { z } from "zod";
import { formatFieldPath, plainIssueMessage } from "./zod-messages.ts";

const count = z.number();
const entryRef = z.looseObject({ provider: z.string(), target: z.string() });

const backendStatus = z.looseObject({
  id: z.string(),
  target: z.string(),
  provider: z.string(),
  active: count,
  total: count,
  bytesToBackend: count,
  bytesToClient: count,
  health: z.string(),
  healthy: z.boolean().optional(),
  healthCause: z.string().optional(),
  probed: z.boolean().optional(),
  disabled: z.boolean().optional(),
  slowStartMs: count.optional(),
  slowStartEndsInMs: count.optional(),
  slowStartWeight: count.optional(),
});

const removedBackendStatus = z.looseObject({
  id: z.string(),
  target: z.string(),
  active: count,
  total: count,
  bytesToBackend: count,
  bytesToClient: count,
  targetInUse: z.boolean().optional(),
  drainEndsInMs: count.optional(),
});

const processStatus = z.looseObject({
  version: z.string(),
  commit: z.string(),
  pid: count,
  startedAt: z.string(),
  uptimeMs: count,
  configFile: z.string().optional(),
  lastReload: z.looseObject({ at: z.string(), reason: z.string(), result: z.string(), error: z.string().optional() }).optional(),
  pendingRestart: z.array(z.string()).optional(),
});

/** `GET /v1/backends`, as `BalancerStatus` describes it. */
const balancerStatus = z.looseObject({
  listeners: z.array(z.string()),
  inheritedListeners: z.array(z.looseObject({ listener: z.string(), fd: count, fdName: z.string().optional() })).optional(),
  backends: z.array(backendStatus),
  removed: z.array(removedBackendStatus),
  conflicts: z.array(z.looseObject({ id: z.string(), kept: entryRef, ignored: entryRef })),
  providers: z.array(
    z.looseObject({
      name: z.string(),
      backends: count,
      failing: z.boolean().optional(),
      failingForMs: count.optional(),
      lastError: z.string().optional(),
      stale: z.boolean().optional(),
      staleSince: z.string().optional(),
      staleReason: z.string().optional(),
    }),
  ),
  degraded: z.boolean().optional(),
  process: processStatus.optional(),
  shuttingDown: z.boolean().optional(),
  shutdownEndsInMs: count.optional(),
  connections: count.optional(),
  maxConnections: count.optional(),
  maxConnectionsPerBackend: count.optional(),
  balance: z.string().optional(),
  slowStartMs: count.optional(),
  lateWorkers: z.array(count).optional(),
});

/** `PUT` and `DELETE /v1/backends/{id}`. */
const backendChange = z.looseObject({
  id: z.string(),
  target: z.string(),
  previousTarget: z.string().nullable().optional(),
  servedBy: entryRef.nullable().optional(),
  slowStartMs: count.optional(),
});

/** `PUT /v1/backends/{id}/state`, as `BackendStateChange` describes it. */
const stateChange = z.looseObject({
  id: z.string(),
  target: z.string(),
  state: z.enum(["enabled", "disabled"]),
  changed: z.boolean(),
  closedConnections: count.optional(),
  fromConfigFile: z.boolean().optional(),
  slowStartMs: count.optional(),
});

const settingEntry = z.looseObject({
  key: z.string(),
  value: z.union([z.string(), z.number(), z.boolean(), z.null(), z.array(z.union([z.string(), z.number()]))]),
  source: z.string(),
});

/** `GET /v1/config`, as `ConfigView` describes it. */
const configView = z.looseObject({
  configFile: z.string().nullable(),
  settings: z.array(settingEntry),
  backendOverrides: z.array(z.looseObject({ id: z.string(), settings: z.array(settingEntry) })),
  pendingRestart: z.array(z.string()),
});

/** Schema of the successful response of each route the commands call, by method and path. */
const ROUTES: { method: string; path: RegExp; schema: z.ZodType }[] = [
  { method: "GET", path: /^\/v1\/backends$/, schema: balancerStatus },
  { method: "GET", path: /^\/v1\/config$/, schema: configView },
  { method: "PUT", path: /^\/v1\/backends\/[^/]+\/state$/, schema: stateChange },
  { method: "PUT", path: /^\/v1\/backends\/[^/]+$/, schema: backendChange },
  { method: "DELETE", path: /^\/v1\/backends\/[^/]+$/, schema: backendChange },
];

/**
 * Checks a parsed response of `method path` against the shape the commands read, and returns
 * it unchanged. A route the commands do not call is not checked.
 *
 * @throws {Error} naming the first field that does not match, such as `backends[0].health: missing`.
 */
export function checkAdminResponse(method: string, path: string, response: unknown): unknown {
  const route = ROUTES.find((entry) => entry.method === method && entry.path.test(path));
  if (route === undefined) {
    return response;
  }

  const result = route.schema.safeParse(response, { error: plainIssueMessage });
  if (result.success) {
    return response;
  }
  const issue = result.error.issues[0]!;

  throw new Error(`${formatFieldPath(issue.path, "the response")}: ${issue.message}`);
}
