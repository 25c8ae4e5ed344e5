/**
 * Converts between node:http's request and response objects and the fetch API's `Request` and
 * `Response`, so that the routes of the admin API and the metrics server stay fetch handlers.
 */
import type { IncomingMessage, ServerResponse } from "node:http";

/** Base of the URL of a request whose target is a path, since the routes read only the path and query. */
const PATH_BASE = "http://localhost";

/**
 * Bytes of a request body that the queue between node:http and the handler's stream buffers
 * before the socket is paused, so a handler that stops reading (at the body cap) stops the
 * upload too, instead of the queue buffering it.
 */
const BODY_QUEUE_BYTES = 64 * 1024;

/**
 * Builds the `Request` of an incoming request. The URL is built from the request target alone,
 * so a missing or malformed Host header changes nothing. The body, for a method other than
 * GET and HEAD, is a stream that reads the socket only as fast as the handler reads it.
 *
 * @throws {TypeError} for a header that the fetch API rejects.
 */
export function toFetchRequest(incoming: IncomingMessage): Request {
  const target = incoming.url ?? "/";
  // An origin-form target such as "//x" is a path, not a URL without a scheme.
  const url = target.startsWith("/") ? PATH_BASE + target : (URL.parse(target)?.href ?? `${PATH_BASE}/`);
  const headers = new Headers();
  for (let i = 0; i + 1 < incoming.rawHeaders.length; i += 2) {
    headers.append(incoming.rawHeaders[i]!, incoming.rawHeaders[i + 1]!);
  }
  const method = incoming.method ?? "GET";
  const hasBody = method !== "GET" && method !== "HEAD";

  return new Request(url, { method, headers, body: hasBody ? bodyStream(incoming) : null, duplex: "half" } as RequestInit);
}

/**
 * Returns the body of `incoming` as a stream with backpressure: the socket pauses while the
 * queue is full. A request that closes before its end errors the stream.
 */
function bodyStream(incoming: IncomingMessage): ReadableStream<Uint8Array> {
  // False once the stream is closed, errored or cancelled, when the controller takes nothing more.
  let open = true;

  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        incoming.on("data", (chunk: Buffer) => {
          if (!open) {
            return;
          }
          controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          if ((controller.desiredSize ?? 0) <= 0) {
            incoming.pause();
          }
        });
        incoming.once("end", () => {
          if (open) {
            open = false;
            controller.close();
          }
        });
        const fail = (error?: Error): void => {
          if (open) {
            open = false;
            controller.error(error ?? new Error("the client closed the connection before the request body ended"));
          }
        };
        incoming.once("error", fail);
        incoming.once("close", () => fail());
        incoming.pause();
      },
      pull() {
        incoming.resume();
      },
      cancel() {
        open = false;
        incoming.pause();
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: BODY_QUEUE_BYTES }),
  );
}

/**
 * Writes `response` to `outgoing`, with `extraHeaders` added. A body gets its `Content-Length`.
 * A response without a body keeps the `Content-Length` it carries, which a response to HEAD
 * sets to the length of the body a GET would get.
 */
export async function sendFetchResponse(outgoing: ServerResponse, response: Response, extraHeaders: Record<string, string> = {}): Promise<void> {
  const body = response.body === null ? undefined : Buffer.from(await response.arrayBuffer());
  response.headers.forEach((value, name) => outgoing.setHeader(name, value));
  for (const [name, value] of Object.entries(extraHeaders)) {
    outgoing.setHeader(name, value);
  }
  if (body !== undefined) {
    outgoing.setHeader("content-length", body.byteLength);
  }
  outgoing.statusCode = response.status;
  if (body !== undefined) {
    outgoing.write(body);
  }
  outgoing.end();
}
