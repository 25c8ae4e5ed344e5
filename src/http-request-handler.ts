import { AdminRequestError, json, requestPath } from "./admin-request.ts";
import type { Logger } from "./logger.ts";

/**
 * Serves one HTTP request of the admin API or the metrics server. `route` returns the response
 * to `request`, or throws `AdminRequestError` for a request it cannot serve, which becomes a
 * JSON error with that status. Any other error becomes a 500 and is logged as an invariant
 * violation. A response to HEAD carries no body but keeps the `Content-Length` of the body a
 * GET would get.
 */
export async function handleHttpRequest(request: Request, route: () => Response | Promise<Response>, log: Logger): Promise<Response> {
  const path = requestPath(request);
  try {
    const response = await route();
    log.debug("HTTP request", { method: request.method, path, status: response.status });

    return request.method === "HEAD" ? await withoutBody(response) : response;
  } catch (error) {
    if (error instanceof AdminRequestError) {
      log.debug("HTTP request failed", { method: request.method, path, status: error.status, err: error.message });
      const body: Record<string, unknown> = { error: error.message };
      if (error.field !== undefined) {
        body.field = error.field;
      }

      const response = json(error.status, body, error.headers);

      return request.method === "HEAD" ? await withoutBody(response) : response;
    }
    log.error("invariant violated: HTTP request failed", { method: request.method, path, err: error });

    return json(500, { error: "internal error; see the tinylb log" });
  }
}

/**
 * Drops the body of a response to HEAD, keeping the status and headers a GET would get. The
 * `Content-Length` is the length of the dropped body, as RFC 9110 (section 8.6) requires,
 * because Bun (1.4.4) sends 0 for a response without a body.
 */
async function withoutBody(response: Response): Promise<Response> {
  const length = (await response.arrayBuffer()).byteLength;
  const headers = new Headers(response.headers);
  headers.set("content-length", String(length));

  return new Response(null, { status: response.status, headers });
}
