/**
 * Request handling shared by the admin API's routes, and in part by the metrics server: the
 * error a route throws for a request it cannot serve, JSON responses and the method check.
 * It also reads a JSON body within its size limit and checks it against a schema, with
 * messages that name each bad field.
 */
import type { z } from "zod";
import { findDuplicateJsonKey } from "./duplicate-keys.ts";
import { describeJsonBodyError } from "./json-errors.ts";
import { joinWords } from "./word-lists.ts";
import { formatFieldPath, plainJsonIssueMessage } from "./zod-messages.ts";

/** Largest request body accepted, in bytes: room for about 10,000 backends. */
export const MAX_ADMIN_BODY_BYTES = 1024 * 1024;

/** Problems of one request body that its error message names at most, so a body of 10,000 bad entries gets a short message. */
export const MAX_REPORTED_ISSUES = 5;

/** A request that cannot be served, sent back with its status and a JSON error naming the field. */
export class AdminRequestError extends Error {
  override name = "AdminRequestError";

  constructor(
    readonly status: number,
    message: string,
    readonly field?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** Formats a JSON response. */
export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body) + "\n", { status, headers: { "content-type": "application/json", ...headers } });
}

/** Base of a request target that is only a path, which HTTP/1.0 allows without a Host header. */
const PATH_ONLY_BASE = "http://localhost";

/** The path of a URL whose authority does not parse, such as one built from `Host: [::1`. */
const PATH_AFTER_AUTHORITY = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*(\/[^?#]*)?/i;

/**
 * Returns the path of a request. Bun 1.4.4 gives a request that has no Host header, such as
 * `GET /healthz HTTP/1.0`, a `url` that is only the path, which `new URL` alone rejects. It
 * builds the `url` of other requests from the Host header, so a malformed Host makes the
 * whole URL invalid. The path is then read after the authority.
 */
export function requestPath(request: Request): string {
  const parsed = URL.parse(request.url, PATH_ONLY_BASE);
  if (parsed !== null) {
    return parsed.pathname;
  }

  return PATH_AFTER_AUTHORITY.exec(request.url)?.[1] ?? "/";
}

/**
 * Rejects a method that is not in `allowed`. GET allows HEAD too.
 *
 * @throws {AdminRequestError} 405 whose message and `Allow` header (RFC 9110, section 15.5.6)
 *   both list every allowed method, HEAD included.
 */
export function allowMethods(method: string, allowed: string[]): void {
  if (!allowed.includes(method)) {
    const allow = allowed.flatMap((name) => (name === "GET" ? ["GET", "HEAD"] : [name]));
    throw new AdminRequestError(405, `method ${method} is not allowed here; use ${joinWords(allow, "or")}`, undefined, { allow: allow.join(", ") });
  }
}

/**
 * Checks a parsed request body against `schema` and returns its data.
 *
 * @throws {AdminRequestError} 400 naming up to `MAX_REPORTED_ISSUES` problems.
 */
export function validateBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body, { reportInput: true, error: plainJsonIssueMessage });
  if (result.success) {
    return result.data;
  }

  // The message names several problems, as for a config file, so one request finds them. `field` is the first one's.
  const issues = result.error.issues.slice(0, MAX_REPORTED_ISSUES);
  const message = issues.map(describeIssue).join("; ") + moreProblems(result.error.issues.length);
  throw new AdminRequestError(400, message, formatFieldPath(issues[0]!.path, "(body)"));
}

/** Describes one problem of a request body: the field, what is wrong, and the value given. */
export function describeIssue(issue: z.core.$ZodIssue): string {
  const field = formatFieldPath(issue.path, "(body)");
  const input = "input" in issue ? issue.input : undefined;
  // Objects are not quoted: JSON.stringify of a deeply nested body overflows the stack. A
  // message that quotes a string itself, such as `got the string "yes"`, is not given it twice.
  const quoted = typeof input === "string" && issue.message.includes(JSON.stringify(input));
  const got = input === undefined || typeof input === "object" || quoted ? "" : ` (got ${JSON.stringify(input)?.slice(0, 80)})`;
  // The body itself has no field name worth repeating in the message.
  const subject = issue.path.length === 0 ? "invalid request body" : field;

  return `${subject}: ${issue.message}${got}`;
}

/** Returns "; and N more problems" when `count` is above `MAX_REPORTED_ISSUES`, else "". */
export function moreProblems(count: number): string {
  const more = count - MAX_REPORTED_ISSUES;

  return more > 0 ? `; and ${more} more ${more === 1 ? "problem" : "problems"}` : "";
}

/**
 * Reads the chunks of a request body of at most `MAX_ADMIN_BODY_BYTES`.
 *
 * @throws {AdminRequestError} 413 for a larger body, 400 for a body that did not arrive whole
 *   because the client closed the connection or stopped sending until the idle timeout.
 */
async function readBodyChunks(request: Request): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = [];
  if (request.body === null) {
    return chunks;
  }

  let size = 0;
  try {
    for await (const chunk of request.body) {
      size += chunk.byteLength;
      if (size > MAX_ADMIN_BODY_BYTES) {
        throw tooLarge();
      }
      chunks.push(chunk);
    }
  } catch (error) {
    if (error instanceof AdminRequestError) {
      throw error;
    }
    // The client's doing, not a fault of tinylb; the response cannot reach it anyway.
    throw new AdminRequestError(400, `invalid request body: the connection closed after ${size} bytes, before the body ended`, "(body)");
  }

  return chunks;
}

/**
 * Reads a request body of at most `MAX_ADMIN_BODY_BYTES` and parses it as JSON.
 *
 * @throws {AdminRequestError} 413 for a larger body, 400 for a body that is not UTF-8 JSON or
 *   did not arrive whole.
 */
export async function readJsonBody(request: Request): Promise<unknown> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > MAX_ADMIN_BODY_BYTES) {
    throw tooLarge();
  }

  const chunks = await readBodyChunks(request);

  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new AdminRequestError(400, "invalid request body: not valid UTF-8", "(body)");
  }
  if (text.trim() === "") {
    throw new AdminRequestError(400, "invalid request body: empty; send a JSON object", "(body)");
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (error) {
    throw new AdminRequestError(400, describeJsonBodyError(text, error), "(body)");
  }
  // JSON.parse keeps the last of two equal keys, so `{"backends":[...],"backends":[]}` would
  // empty the set without a word. A config file rejects the same text.
  const duplicate = findDuplicateJsonKey(text);
  if (duplicate !== undefined) {
    throw new AdminRequestError(400, `invalid request body at line ${duplicate.line}: duplicate key "${duplicate.key}", already set at line ${duplicate.firstLine}; remove one of them`, "(body)");
  }

  return body;
}

function tooLarge(): AdminRequestError {
  return new AdminRequestError(413, `request body too large: the limit is ${MAX_ADMIN_BODY_BYTES} bytes`, "(body)");
}
