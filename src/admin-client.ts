import { type Address, formatAddress } from "./address.ts";
import { readTokenFile } from "./admin-token.ts";
import { checkAdminResponse } from "./admin-responses.ts";
import { adminSocketOwnerProblem, adminSocketTypeProblem } from "./admin-socket-access.ts";
import type { CliOptions } from "./cli.ts";
import type { ConfigError } from "./config.ts";
import { escapeControlCharacters } from "./logger.ts";
import { defaultAdminAddress } from "./provider-settings.ts";
import { socketPathLengthProblem } from "./socket-path.ts";

/** Milliseconds an admin command such as `tinylb status` waits for the balancer's response. */
const ADMIN_TIMEOUT_MS = 5000;

/** Output streams of an admin command, replaceable in tests. */
export interface AdminCommandOutput {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

/** The process's stdout and stderr. */
export const PROCESS_OUTPUT: AdminCommandOutput = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

/**
 * Runs a command that talks to a running balancer's admin API, such as `tinylb status`:
 * `send` performs the requests on the admin address of the command line and returns the
 * text to print. Returns the exit code: 0, 2 for `--admin off` or a Unix socket path too long
 * to connect to, or 1 with a one-line error `tinylb COMMAND: ...` when no balancer responds or
 * `send` throws.
 */
export async function runAdminCommand(
  command: string,
  cli: CliOptions,
  output: AdminCommandOutput,
  send: (admin: Address, tokenFile: string | undefined) => Promise<string>,
): Promise<number> {
  const admin = cli.providers?.admin ?? defaultAdminAddress();
  if (admin === "off") {
    output.stderr(`tinylb ${command}: --admin off leaves no address to connect to; pass the balancer's admin address\n`);

    return 2;
  }
  // connect(2) fails with ENAMETOOLONG, which the fetch of Bun 1.4.4 reports without the length or the limit.
  const tooLong = admin.kind === "unix" ? socketPathLengthProblem(admin.path) : undefined;
  if (tooLong !== undefined) {
    output.stderr(`tinylb ${command}: cannot connect to ${formatAddress(admin)}: ${tooLong}\n`);

    return 2;
  }

  let text: string;
  try {
    text = await send(admin, cli.providers?.adminTokenFile);
  } catch (error) {
    output.stderr(`tinylb ${command}: ${escapeControlCharacters((error as Error).message)}\n`);

    return 1;
  }

  output.stdout(text);

  return 0;
}

/**
 * Sends one request to a running balancer's admin API and returns its parsed JSON response.
 * `body`, when given, is sent as JSON.
 *
 * A response of a route that the commands read is checked with `checkAdminResponse`.
 *
 * @throws {Error} naming the address when nothing responds, or the response is an error, not
 *   JSON, or not shaped as a tinylb balancer's.
 */
export async function requestAdmin(admin: Address, tokenFile: string | undefined, method: string, path: string, body?: unknown): Promise<unknown> {
  const name = formatAddress(admin);
  let token: string | undefined;
  try {
    token = tokenFile === undefined ? undefined : readTokenFile(tokenFile);
  } catch (error) {
    throw new Error((error as ConfigError).message, { cause: error });
  }

  const url = admin.kind === "unix" ? `http://localhost${path}` : `http://${name}${path}`;
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
  }
  const init: RequestInit & { unix?: string } = {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(ADMIN_TIMEOUT_MS),
    headers,
  };
  if (admin.kind === "unix") {
    const notSocket = adminSocketTypeProblem(admin.path);
    if (notSocket !== undefined) {
      throw new Error(`cannot connect to ${name}: ${notSocket}; pass --admin ADDR with the balancer's admin socket`);
    }
    const foreign = adminSocketOwnerProblem(admin.path);
    if (foreign !== undefined) {
      throw new Error(foreign);
    }
    init.unix = admin.path;
  }

  let response: Response;
  let text: string;
  try {
    response = await fetch(url, init);
    text = await response.text();
  } catch (error) {
    throw new Error(describeFetchFailure(name, describeFetchError(error)), { cause: error });
  }

  if (!response.ok) {
    const detail = parseError(text, response.status);
    if (detail === undefined) {
      throw new Error(`${name} does not respond as a tinylb admin API (status ${response.status} without a tinylb error); pass --admin ADDR with the balancer's admin address`);
    }
    throw new Error(`the balancer on ${name} responded with status ${response.status}: ${detail}${fixFor(response.status, tokenFile)}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text) as unknown;
  } catch {
    throw new Error(`the response from ${name} is not JSON; is this a tinylb admin API?`);
  }
  try {
    return checkAdminResponse(method, path, parsed);
  } catch (error) {
    throw new Error(`the response from ${name} is not a tinylb balancer's (${(error as Error).message}); pass --admin ADDR with the balancer's admin address`, { cause: error });
  }
}

/** Returns the next step for an error status of the admin API, or "". */
function fixFor(status: number, tokenFile: string | undefined): string {
  if (status !== 401) {
    return "";
  }

  return tokenFile === undefined
    ? "; pass --admin-token-file FILE with the file that holds the balancer's admin token"
    : `; check that ${tokenFile} holds the balancer's admin token`;
}

/**
 * A failed request in words. `kind` is `unreachable` when nothing listened, `denied` when the
 * socket's mode or folder kept this user out, `closed` when the peer closed the connection
 * before any response, and `foreign` when something listened but did not respond with HTTP.
 */
interface FetchFailure {
  kind: "unreachable" | "denied" | "closed" | "foreign";
  reason: string;
}

/** Returns the error of a request to the admin address `name` that failed as `failure`, with the next step. */
function describeFetchFailure(name: string, failure: FetchFailure): string {
  switch (failure.kind) {
    case "denied":
      return `this user may not connect to ${name} (${failure.reason}); run the command as root or as the user that runs the balancer`;
    case "closed":
      // A tinylb at its admin connection cap closes new connections at accept.
      return `${name} closed the connection before a response; a tinylb at its admin connection cap does that, so retry in a few seconds, or pass --admin ADDR with the balancer's admin address`;
    case "foreign":
      return `${name} does not respond as a tinylb admin API (${failure.reason}); pass --admin ADDR with the balancer's admin address`;
    case "unreachable":
      return `no balancer responds on ${name} (${failure.reason}); is tinylb running? Pass --admin ADDR for another address`;
  }
}

function describeFetchError(error: unknown): FetchFailure {
  const code = (error as { code?: string }).code;
  if (code === "ENOENT" || code === "FailedToOpenSocket") {
    return { kind: "unreachable", reason: "the socket does not exist" };
  }
  // Bun 1.4.4 words it "EACCES: Was there a typo in the url or port?".
  if (code === "EACCES" || code === "EPERM") {
    return { kind: "denied", reason: `permission denied (${code})` };
  }
  if (code === "ECONNREFUSED" || code === "ConnectionRefused") {
    return { kind: "unreachable", reason: "connection refused" };
  }
  if (code === "Malformed_HTTP_Response") {
    return { kind: "foreign", reason: "the response is not HTTP" };
  }
  if (code === "ECONNRESET") {
    return { kind: "closed", reason: "the connection was closed before a response" };
  }
  if ((error as Error).name === "TimeoutError") {
    return { kind: "foreign", reason: `no answer within ${ADMIN_TIMEOUT_MS} ms` };
  }

  // Bun's fetch errors end with a hint for developers about a `verbose` option.
  const message = (error as Error).message ?? String(error);

  return { kind: "unreachable", reason: message.replace(/\.? For more information, pass `verbose: true`.*$/s, "") };
}

/**
 * Returns the message of a tinylb error response, or undefined when `body` is not one. A 400
 * message gets its `field` in front, such as `target: invalid address ...`, unless it names
 * the field already.
 */
function parseError(body: string, status: number): string | undefined {
  // A JSON body may also be null or a number, which have no fields.
  let parsed: { error?: unknown; field?: unknown } | null;
  try {
    parsed = JSON.parse(body) as { error?: unknown; field?: unknown } | null;
  } catch {
    return undefined;
  }
  if (typeof parsed?.error !== "string") {
    return undefined;
  }

  const field = parsed.field;
  if (status === 400 && typeof field === "string" && !parsed.error.startsWith(field)) {
    return `${field}: ${parsed.error}`;
  }

  return parsed.error;
}
