import { z } from "zod";
import { type Address, AddressError, formatAddress, parseAddress } from "./address.ts";
import { AdminRequestError, allowMethods, describeIssue, json, MAX_REPORTED_ISSUES, moreProblems, readJsonBody, requestPath, validateBody } from "./admin-request.ts";
import { type Backend, BackendError, createBackend, validateId } from "./backend.ts";
import { BackendSet } from "./backend-set.ts";
import type { BackendSetUnion } from "./backend-set-union.ts";
import type { BalancerStatus } from "./balancer-status.ts";
import { BACKEND_STATES, type BackendStates } from "./backend-states.ts";
import type { ConfigView } from "./config-view.ts";
import { METRICS_CONTENT_TYPE } from "./metrics.ts";
import type { AdminApiProvider } from "./providers/admin-api-provider.ts";
import { type ControlAddress, findSelfTarget } from "./self-target.ts";
import { formatFieldPath, plainJsonIssueMessage } from "./zod-messages.ts";
import { joinWords } from "./word-lists.ts";

/** Most backends a `PUT /v1/backends` may carry, as in a config file. */
export const MAX_ADMIN_BACKENDS = 10_000;

/** The state the read-only routes `/healthz`, `/readyz` and `/metrics` read. */
export interface ReadOnlyRouteContext {
  union: BackendSetUnion;
  /** Returns the status; `lateWorkers` is the result of `refreshCounters` when the route called it. */
  status: (lateWorkers?: number[]) => BalancerStatus;
  /** Returns the metrics page; `lateWorkers` is the result of `refreshCounters` when the route called it. */
  metrics: (lateWorkers?: number[]) => string;
  /**
   * Collects fresh counters from the relay workers and resolves with the numbers of those that
   * did not reply in time (see WorkerPool.refreshCounters), or with undefined without relay workers.
   */
  refreshCounters?: () => Promise<number[] | undefined>;
  /** True once the balancer has begun to shut down, so `/readyz` returns 503 while it drains. */
  shuttingDown?: () => boolean;
}

/** The state the routes read and change. */
export interface AdminRouteContext extends ReadOnlyRouteContext {
  api: AdminApiProvider;
  /** Disables and enables backends of the running set, from any provider. */
  states: BackendStates;
  /** The balancer's bound listen addresses, which no backend target may equal. */
  listenAddresses?: () => readonly Address[];
  /** The admin API and metrics addresses, which no backend target may equal either. */
  controlAddresses?: () => readonly ControlAddress[];
  /** Resolves once every relay thread applies the changes made so far (see WorkerPool.synced); absent without relay workers. */
  settled?: () => Promise<void>;
  /** Returns the window of the slow start that backend `id` is in, in milliseconds, or undefined outside one. */
  slowStartMs?: (id: string) => number | undefined;
  /** Returns the settings in effect for `GET /v1/config`; that route returns 404 without it. */
  config?: () => ConfigView;
  /** Absolute path of the `--config` file, which error messages name. Absent without `--config`. */
  configFile?: string;
}

const backendEntry = z.strictObject({ id: z.string(), target: z.string() });
// Entries are checked one by one (see replaceBackends), so that a body's missing keys and bad values are named together.
const replaceBody = z.strictObject({ backends: z.array(z.unknown()).max(MAX_ADMIN_BACKENDS) });
const putOneBody = z.strictObject({ id: z.string().optional(), target: z.string() });
const stateChoices = joinWords(BACKEND_STATES.map((state) => JSON.stringify(state)), "or");
const putStateBody = z.strictObject({
  // A missing state gets the choices too; a wrong one gets them from plainIssueMessage.
  state: z.enum(BACKEND_STATES, { error: (issue) => (issue.input === undefined ? `missing; use ${stateChoices}` : undefined) }),
  closeConnections: z.boolean().optional(),
});

const BACKEND_PATH = /^\/v1\/backends\/([^/]+)$/;
const BACKEND_STATE_PATH = /^\/v1\/backends\/([^/]+)\/state$/;

/**
 * Serves one admin request. Every path has a fixed set of methods; another method gets
 * 405 with an `Allow` header. HEAD is served wherever GET is, as RFC 9110 expects, and the
 * caller drops the body but keeps its length in `Content-Length`.
 *
 * @throws {AdminRequestError} for a request that cannot be served; nothing was changed.
 */
export async function routeAdminRequest(request: Request, context: AdminRouteContext): Promise<Response> {
  const path = requestPath(request);
  const method = request.method === "HEAD" ? "GET" : request.method;

  const readOnly = await routeReadOnlyRequest(request, context);
  if (readOnly !== undefined) {
    return readOnly;
  }
  if (path === "/v1/backends") {
    allowMethods(method, ["GET", "PUT"]);

    return method === "GET" ? json(200, context.status(await context.refreshCounters?.())) : settled(replaceBackends(await readJsonBody(request), context), context);
  }

  // Only here, not on the metrics server: it lists file paths and addresses, and that server has no token.
  if (path === "/v1/config" && context.config !== undefined) {
    allowMethods(method, ["GET"]);

    return json(200, context.config());
  }

  const match = BACKEND_PATH.exec(path);
  if (match !== null) {
    allowMethods(method, ["GET", "PUT", "DELETE"]);
    const id = decodeId(match[1]!);
    if (method === "GET") {
      return getBackend(id, context);
    }

    return settled(method === "PUT" ? putBackend(id, await readJsonBody(request), context) : deleteBackend(id, context), context);
  }

  const stateMatch = BACKEND_STATE_PATH.exec(path);
  if (stateMatch !== null) {
    allowMethods(method, ["GET", "PUT"]);
    const id = decodeId(stateMatch[1]!);

    return method === "GET" ? getBackendState(id, context) : settled(await putBackendState(id, await readJsonBody(request), context), context);
  }

  throw new AdminRequestError(404, `no route for ${path}; see /v1/backends, /v1/backends/{id}, /v1/backends/{id}/state, /v1/config, /healthz, /readyz and /metrics`);
}

/**
 * Returns the response of a change once every relay thread applied it, so that a client that
 * connects after the response, such as one started by a script after `tinylb add`, meets the
 * new set in whichever thread accepts it.
 */
async function settled(response: Response, context: AdminRouteContext): Promise<Response> {
  await context.settled?.();

  return response;
}

/**
 * Serves the read-only routes `/healthz`, `/readyz` and `/metrics`, which the admin API and
 * the metrics server share, and returns undefined for any other path. Only GET and HEAD are
 * allowed on them.
 *
 * @throws {AdminRequestError} 405 for another method.
 */
export async function routeReadOnlyRequest(request: Request, context: ReadOnlyRouteContext): Promise<Response | undefined> {
  const path = requestPath(request);
  const method = request.method === "HEAD" ? "GET" : request.method;

  if (path === "/healthz") {
    allowMethods(method, ["GET"]);

    return json(200, { status: "ok" });
  }
  if (path === "/readyz") {
    allowMethods(method, ["GET"]);
    if (context.shuttingDown?.() === true) {
      return json(503, { status: "draining", error: "tinylb is shutting down and accepts no new clients" });
    }
    const size = context.union.set.size;
    if (size === 0) {
      return json(503, { status: "not ready", error: "the backend set is empty" });
    }
    const status = context.status();
    const disabled = status.backends.filter((backend) => backend.disabled).length;
    if (disabled === status.backends.length) {
      return json(503, { status: "not ready", error: ALL_DISABLED });
    }
    // `backends` counts the whole set; `disabled`, only present when above 0, those out of rotation.
    const counts = disabled > 0 ? { backends: size, disabled } : { backends: size };
    if (status.degraded) {
      // Still 200: a degraded balancer tries every enabled backend, so it may serve clients.
      return json(200, { status: "degraded", ...counts, warning: "every enabled backend is unhealthy or pending; each is tried anyway" });
    }

    return json(200, { status: "ready", ...counts });
  }
  if (path === "/metrics") {
    allowMethods(method, ["GET"]);

    return new Response(context.metrics(await context.refreshCounters?.()), { headers: { "content-type": METRICS_CONTENT_TYPE } });
  }

  return undefined;
}

/** The `/readyz` error while every backend of the set is disabled. */
const ALL_DISABLED = 'every backend is disabled, so clients are closed; enable one with tinylb enable ID, or PUT /v1/backends/{id}/state with {"state": "enabled"}';

function decodeId(encoded: string): string {
  let id: string;
  try {
    id = decodeURIComponent(encoded);
  } catch {
    throw new AdminRequestError(400, `invalid backend id in the path: "${encoded}" is not valid percent-encoding`, "id");
  }
  try {
    validateId(id);
  } catch (error) {
    throw new AdminRequestError(400, (error as BackendError).message, "id");
  }

  return id;
}

function replaceBackends(body: unknown, context: AdminRouteContext): Response {
  const parsed = validateBody(replaceBody, body);
  const problems: EntryProblem[] = [];
  const seen = new Map<string, number>();
  const backends: Backend[] = [];
  for (const [index, entry] of parsed.backends.entries()) {
    // The entry's path within the body lets a string entry get the example built from it.
    const result = backendEntry.safeParse(entry, { reportInput: true, error: (issue) => plainJsonIssueMessage({ ...issue, path: ["backends", index, ...(issue.path ?? [])] }) });
    if (!result.success) {
      for (const issue of result.error.issues) {
        const path = ["backends", index, ...issue.path];
        problems.push({ status: 400, field: formatFieldPath(path, "(body)"), text: describeIssue({ ...issue, path }) });
      }
      continue;
    }
    try {
      backends.push(checkEntry(result.data, index, seen, context));
    } catch (error) {
      if (!(error instanceof AdminRequestError)) {
        throw error;
      }
      const field = error.field ?? "(body)";
      problems.push({ status: error.status, field, text: `${field}: ${error.message}`, error });
    }
  }
  if (problems.length > 0) {
    throw combineProblems(problems);
  }

  context.api.replace(new BackendSet(backends));
  const conflicts = context.union.conflicts.filter((conflict) => conflict.ignored.provider === context.api.name);

  return json(200, { backends: context.api.set.backends.map(describe), conflicts });
}

/** One problem of an entry of a `PUT /v1/backends` body. */
interface EntryProblem {
  status: number;
  field: string;
  /** The problem with its field, as the combined message lists it. */
  text: string;
  /** The error of a check that found the problem, rethrown as it is when it is the only one. */
  error?: AdminRequestError;
}

/** Checks one entry of a `PUT /v1/backends` body and returns its backend. `seen` maps each id to the index that first used it. */
function checkEntry(entry: { id: string; target: string }, index: number, seen: Map<string, number>, context: AdminRouteContext): Backend {
  const first = seen.get(entry.id);
  if (first !== undefined) {
    throw new AdminRequestError(400, `duplicate id "${entry.id}", already used by backends[${first}]; ids must be unique`, `backends[${index}].id`);
  }
  seen.set(entry.id, index);

  const backend = toBackend(entry.id, entry.target, `backends[${index}]`);
  rejectForeignId(backend, context, `backends[${index}].id`);
  rejectSelfTarget(backend, context, `backends[${index}].target`);

  return backend;
}

/**
 * Joins the problems of a body's entries into one error, so one request finds them all. It
 * names the first `MAX_REPORTED_ISSUES` and counts the rest. Its status is 400 when any entry
 * is invalid and 409 when every one only conflicts with another provider. Its field is the
 * first problem's.
 */
function combineProblems(problems: EntryProblem[]): AdminRequestError {
  const [first] = problems as [EntryProblem];
  if (problems.length === 1) {
    return first.error ?? new AdminRequestError(first.status, first.text, first.field);
  }

  const status = problems.some((problem) => problem.status === 400) ? 400 : first.status;
  const named = problems.slice(0, MAX_REPORTED_ISSUES).map((problem) => problem.text);

  return new AdminRequestError(status, named.join("; ") + moreProblems(problems.length), first.field);
}

function getBackend(id: string, context: AdminRouteContext): Response {
  const backend = context.status().backends.find((candidate) => candidate.id === id);
  if (backend === undefined) {
    throw notInSet(id);
  }

  return json(200, backend);
}

function notInSet(id: string): AdminRequestError {
  return new AdminRequestError(404, `backend "${id}" not found in the running set`, "id");
}

function getBackendState(id: string, context: AdminRouteContext): Response {
  const state = context.states.state(id);
  if (state === undefined) {
    throw notInSet(id);
  }

  return json(200, { id, state });
}

/** Disables or enables a backend of any provider; see BackendStates.change. */
async function putBackendState(id: string, body: unknown, context: AdminRouteContext): Promise<Response> {
  const parsed = validateBody(putStateBody, body);
  if (parsed.closeConnections === true && parsed.state !== "disabled") {
    throw new AdminRequestError(400, `closeConnections: true applies only with "state": "disabled"; remove it to enable the backend`, "closeConnections");
  }

  const change = await context.states.change(id, parsed.state, parsed.closeConnections);
  if (change === undefined) {
    throw notInSet(id);
  }

  return json(200, change);
}

function putBackend(id: string, body: unknown, context: AdminRouteContext): Response {
  const parsed = validateBody(putOneBody, body);
  if (parsed.id !== undefined && parsed.id !== id) {
    throw new AdminRequestError(400, `the body's id "${parsed.id}" does not match the id "${id}" in the path`, "id");
  }
  const backend = toBackend(id, parsed.target, "");

  rejectForeignId(backend, context, "id");
  rejectSelfTarget(backend, context, "target");
  const previous = context.api.put(backend);

  // `previousTarget` lets a client such as `tinylb add` report whether it added, retargeted or changed nothing,
  // and `servedBy` whether the new entry serves or another provider's entry with the same id does.
  // `slowStartMs` lets the client report that the added or retargeted backend begins with a small share of new clients.
  const slowStartMs = previous?.target === backend.target ? undefined : context.slowStartMs?.(id);
  const slowStart = slowStartMs === undefined ? {} : { slowStartMs };

  return json(previous === undefined ? 201 : 200, { ...describe(backend), previousTarget: previous?.target ?? null, servedBy: servingEntry(id, context), ...slowStart });
}

/**
 * Returns the provider and target of the entry that serves `id` in the running set, or null
 * when the id is not in it. A provider registered before the admin API's, such as the static
 * or file provider, wins an id that both publish.
 */
function servingEntry(id: string, context: AdminRouteContext): { provider: string; target: string } | null {
  const provider = context.union.providerOf(id);
  const running = context.union.set.get(id);

  return provider === undefined || running === undefined ? null : { provider, target: running.target };
}

/**
 * Rejects, with 409, a backend whose id another provider publishes with another target,
 * rather than store an entry the union would ignore. The same id with the same target is
 * accepted, because it changes nothing the balancer does.
 */
function rejectForeignId(backend: Backend, context: AdminRouteContext, field: string): void {
  const serving = servingEntry(backend.id, context);
  if (serving !== null && serving.provider !== context.api.name && serving.target !== backend.target) {
    throw new AdminRequestError(409, `backend "${backend.id}" comes from provider "${serving.provider}" with target ${serving.target}; change it there or pick another id`, field);
  }
}

/** Rejects, with 400, a backend whose target is one of the balancer's own listen, admin API or metrics addresses. */
function rejectSelfTarget(backend: Backend, context: AdminRouteContext, field: string): void {
  const looping = findSelfTarget([backend], context.listenAddresses?.() ?? [], context.controlAddresses?.() ?? []);
  if (looping !== undefined) {
    throw new AdminRequestError(400, looping, field);
  }
}

function deleteBackend(id: string, context: AdminRouteContext): Response {
  const backend = context.api.set.get(id);
  if (backend !== undefined) {
    context.api.delete(id);

    // `servedBy` lets a client such as `tinylb remove` report whether another provider's entry keeps serving the id.
    return json(200, { ...describe(backend), servedBy: servingEntry(id, context) });
  }

  const owner = context.union.providerOf(id);
  if (owner !== undefined) {
    throw new AdminRequestError(409, `backend "${id}" comes from provider "${owner}"; only backends set through the admin API can be deleted here, so ${removalFix(owner, context.configFile)}, or stop its clients with tinylb disable ${id} --close-connections`, "id");
  }
  throw new AdminRequestError(404, `backend "${id}" not found`, "id");
}

/** Returns where a backend of provider `owner` is removed, for the 409 of a delete. `configFile` is the `--config` file's absolute path. */
function removalFix(owner: string, configFile: string | undefined): string {
  if (owner === "static") {
    return "remove its --backend flag and restart";
  }
  if (owner === "file") {
    return configFile === undefined ? "remove it from the config file" : `remove it from the config file ${configFile}`;
  }

  return `remove it at its source (provider "${owner}")`;
}

function toBackend(id: string, target: string, prefix: string): Backend {
  const field = (name: string): string => (prefix === "" ? name : `${prefix}.${name}`);
  try {
    validateId(id);
  } catch (error) {
    throw new AdminRequestError(400, (error as BackendError).message, field("id"));
  }
  try {
    // Canonical form first, so the same target written two ways is one target.
    return createBackend(id, formatAddress(parseAddress(target)));
  } catch (error) {
    if (error instanceof AddressError || error instanceof BackendError) {
      throw new AdminRequestError(400, error.message, field("target"));
    }
    throw error;
  }
}

function describe(backend: Backend): { id: string; target: string } {
  return { id: backend.id, target: backend.target };
}
