/**
 * Bounded reading of the HTTP responses of network providers (Kubernetes, etcd), so that a
 * broken or hostile API server or etcd member cannot make tinylb buffer an endless body.
 */

import type { z } from "zod";
import { describeSocketError } from "../socket-errors.ts";

/**
 * Default maximum size of one provider response, in bytes: a whole Kubernetes list (every
 * page), a whole etcd range (every page) or one watch event. The same number is the limit
 * of one streamed watch object in characters.
 */
export const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

/** Bytes of an error response body that are read for its message; the rest is discarded. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

/** Characters of an invalid body quoted in the error. */
const QUOTED_BODY_CHARS = 60;

/** A provider response larger than its limit. */
export class ResponseTooLargeError extends Error {
  override name = "ResponseTooLargeError";
}

/**
 * A byte budget for the responses of one fetch, such as every page of one list. Each
 * `readText` call counts against the same budget.
 */
export class ResponseBudget {
  #bytesRead = 0;

  /**
   * @param source names the request in the error, such as `etcd /v3/kv/range at http://10.0.0.1:2379`.
   * @param hint what to check when the body is not JSON, for the error.
   * @param maxBytes the budget. @default MAX_RESPONSE_BYTES
   */
  constructor(
    private readonly source: string,
    private readonly hint: string,
    private readonly maxBytes = MAX_RESPONSE_BYTES,
  ) {}

  /**
   * Reads the whole body of `response` as UTF-8 text.
   *
   * @throws {ResponseTooLargeError} when the body, with the bodies read before, passes the
   *   budget; the rest of the body is not read and the connection is closed.
   */
  async readText(response: Response): Promise<string> {
    const declared = Number(response.headers.get("content-length") ?? Number.NaN);
    if (this.#bytesRead + declared > this.maxBytes) {
      await response.body?.cancel();
      throw this.#tooLarge(this.#bytesRead + declared, "announced");
    }

    const chunks: Uint8Array[] = [];
    try {
      for await (const chunk of response.body ?? []) {
        this.#bytesRead += chunk.byteLength;
        if (this.#bytesRead > this.maxBytes) {
          // Leaving the loop early cancels the stream, which closes the connection.
          throw this.#tooLarge(this.#bytesRead, "read");
        }
        chunks.push(chunk);
      }
    } catch (error) {
      throw describeBodyReadError(error, this.source);
    }

    return Buffer.concat(chunks).toString("utf8");
  }

  /**
   * Reads the whole body of `response` and parses it as JSON.
   *
   * @throws {ResponseTooLargeError} as `readText` does; Error for a body that is not JSON,
   *   naming the request, the start of the body and the hint.
   */
  async readJson(response: Response): Promise<unknown> {
    const text = await this.readText(response);
    try {
      return JSON.parse(text);
    } catch (error) {
      const start = JSON.stringify(text.slice(0, QUOTED_BODY_CHARS));
      const reason = (error as Error).message;

      throw new Error(`${this.source} response is not JSON (${reason}), it starts with ${start}; ${this.hint}`);
    }
  }

  #tooLarge(bytes: number, how: "announced" | "read"): ResponseTooLargeError {
    const size = how === "announced" ? `${bytes} bytes announced` : `more than ${this.maxBytes} bytes read, stopped at ${bytes}`;

    return new ResponseTooLargeError(`${this.source} response is larger than the limit of ${this.maxBytes} bytes (${size})`);
  }
}

/**
 * Returns the error to throw for `error`, raised while a response body was read. A socket
 * error is reworded with the request's name and in plain words, without Bun's developer hints.
 * Other errors, such as an abort, are returned as they are.
 */
export function describeBodyReadError(error: unknown, source: string): unknown {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code !== "string") {
    return error;
  }

  // No cause: loggers print causes, and Bun's message is the raw text this replaces.
  return new Error(`${source} failed while reading the response: ${describeSocketError(error)}`);
}

/**
 * Checks a decoded response against `schema` and returns the parsed value.
 *
 * @param source names the request in the error, such as `etcd /v3/watch at http://10.0.0.1:2379`.
 * @param hint what to check, for the error.
 * @throws {Error} with one line that names the request, the first invalid field and the hint.
 */
export function parseResponse<T>(schema: z.ZodType<T>, value: unknown, source: string, hint: string): T {
  const result = schema.safeParse(value);
  if (result.success) {
    return result.data;
  }

  const [first, ...rest] = result.error.issues;
  const path = first!.path.map(String).join(".");
  const field = path === "" ? "" : `field ${path}: `;
  const more = rest.length === 0 ? "" : ` (and ${rest.length} more problems)`;

  throw new Error(`${source} sent an invalid response: ${field}${first!.message.replace(/^Invalid input: /, "")}${more}; ${hint}`);
}

/**
 * Reads at most the first 64 KiB of an error response body as text, for its message, and
 * discards the rest.
 */
export async function readErrorBody(response: Response): Promise<string> {
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for await (const chunk of response.body ?? []) {
    chunks.push(chunk);
    bytes += chunk.byteLength;
    if (bytes >= MAX_ERROR_BODY_BYTES) {
      break;
    }
  }

  return Buffer.concat(chunks).subarray(0, MAX_ERROR_BODY_BYTES).toString("utf8");
}
