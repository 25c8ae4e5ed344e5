/**
 * Bounded reading of the HTTP responses of network providers (Kubernetes, etcd), so that a
 * broken or hostile API server or etcd member cannot make tinylb buffer an endless body.
 */

/**
 * Default maximum size of one provider response, in bytes: a whole Kubernetes list (every
 * page), a whole etcd range (every page) or one watch event. The same number is the limit
 * of one streamed watch object in characters.
 */
export const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

/** Bytes of an error response body that are read for its message; the rest is discarded. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

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
   * @param maxBytes the budget. @default MAX_RESPONSE_BYTES
   */
  constructor(
    private readonly source: string,
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
    for await (const chunk of response.body ?? []) {
      this.#bytesRead += chunk.byteLength;
      if (this.#bytesRead > this.maxBytes) {
        // Leaving the loop early cancels the stream, which closes the connection.
        throw this.#tooLarge(this.#bytesRead, "read");
      }
      chunks.push(chunk);
    }

    return Buffer.concat(chunks).toString("utf8");
  }

  /**
   * Reads the whole body of `response` and parses it as JSON.
   *
   * @throws {ResponseTooLargeError} as `readText` does; a SyntaxError for invalid JSON.
   */
  async readJson(response: Response): Promise<unknown> {
    return JSON.parse(await this.readText(response));
  }

  #tooLarge(bytes: number, how: "announced" | "read"): ResponseTooLargeError {
    const size = how === "announced" ? `${bytes} bytes announced` : `more than ${this.maxBytes} bytes read, stopped at ${bytes}`;

    return new ResponseTooLargeError(`${this.source} response is larger than the limit of ${this.maxBytes} bytes (${size})`);
  }
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
