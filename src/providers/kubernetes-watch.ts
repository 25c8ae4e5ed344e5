import { z } from "zod";
import { readJsonObjects } from "./json-object-stream.ts";
import { currentBearerToken, describeCredentials, type KubernetesAccess } from "./kubernetes-access.ts";
import { describeHttpStatus, describeRequestError } from "./kubernetes-errors.ts";
import { REQUEST_TIMEOUT_MS, withDeadline } from "./request-deadline.ts";
import { MAX_RESPONSE_BYTES, parseResponse, readErrorBody, ResponseBudget } from "./response-body.ts";
import { maskUrlCredentials } from "../url-credentials.ts";

/** The parts of a `discovery.k8s.io/v1` EndpointSlice that tinylb reads. */
export const endpointSliceSchema = z.object({
  metadata: z.object({ name: z.string(), resourceVersion: z.string().optional() }),
  addressType: z.string(),
  endpoints: z
    .array(
      z.object({
        addresses: z.array(z.string()),
        conditions: z.object({ ready: z.boolean().nullish() }).nullish(),
      }),
    )
    .nullish(),
  ports: z.array(z.object({ name: z.string().nullish(), port: z.number().int().nullish() })).nullish(),
});

export type EndpointSlice = z.infer<typeof endpointSliceSchema>;

const listSchema = z.object({
  metadata: z.object({ resourceVersion: z.string(), continue: z.string().optional() }),
  items: z.array(endpointSliceSchema).nullish(),
});

const statusSchema = z.object({
  kind: z.literal("Status").optional(),
  code: z.number().optional(),
  reason: z.string().optional(),
  message: z.string().optional(),
});

const watchEventSchema = z.object({ type: z.string(), object: z.record(z.string(), z.unknown()) });

/** A BOOKMARK event's object: only the kind and the resource version are set. */
const bookmarkSchema = z.object({ metadata: z.object({ resourceVersion: z.string() }) });

/** One event of an EndpointSlice watch. */
export type EndpointSliceEvent =
  | { type: "ADDED" | "MODIFIED" | "DELETED"; slice: EndpointSlice }
  | { type: "BOOKMARK"; resourceVersion: string };

/** An error status from the API server, such as 401, 403 or 410 Gone. */
export class KubernetesApiError extends Error {
  override name = "KubernetesApiError";

  constructor(
    message: string,
    /** HTTP status code, or the `code` of a watch ERROR event. */
    readonly status: number,
  ) {
    super(message);
  }

  /** True for 410 Gone: the resource version is too old, so the caller must list again. */
  get gone(): boolean {
    return this.status === 410;
  }
}

/** Destination of requests in place of the API server URL of the access settings. */
export interface ApiRoute {
  /** Base URL, such as `https://127.0.0.1:7443`; its host is not used for certificate checks. */
  url: string;
  /** Unix socket path to connect to instead of the URL's host and port. */
  unixPath?: string;
}

/** Hint in the error of a list or watch response that is not JSON or not of the expected shape. */
const RESPONSE_HINT = "check that the kubeconfig server is a Kubernetes API server that serves discovery.k8s.io/v1, not a proxy or another service";

/** Hint in the error of a list or watch start that timed out. */
const TIMEOUT_HINT = "check that the API server, or tinylb's listener in front of it (viaListener), responds and is not overloaded";

/** A page size that keeps each list response small; the kubernetes service has a few slices. */
const LIST_PAGE_SIZE = 500;

/**
 * Lists and watches the EndpointSlices of one service over the Kubernetes REST API, using
 * JSON and HTTP/1.1 chunked watch responses. Every request re-reads the bearer token file.
 */
export class EndpointSliceClient {
  constructor(
    private readonly access: KubernetesAccess,
    private readonly namespace: string,
    private readonly service: string,
    /** Limit of one whole list, every page, and of one watch event. */
    private readonly maxResponseBytes = MAX_RESPONSE_BYTES,
    /** Deadline of each list page, read in full, and of a watch request until its response headers. */
    private readonly requestTimeoutMs = REQUEST_TIMEOUT_MS,
  ) {}

  /**
   * Lists the service's EndpointSlices, following `continue` tokens.
   *
   * @throws {KubernetesApiError} for an error status; ResponseTooLargeError when the pages
   *   together pass `maxResponseBytes`; RequestTimeoutError when a page is not read in full
   *   within the request timeout; other errors for network and TLS failures.
   */
  async list(route: ApiRoute | undefined, signal: AbortSignal): Promise<{ resourceVersion: string; slices: EndpointSlice[] }> {
    const source = `Kubernetes list of ${this.shownUrl(route)}`;
    const budget = new ResponseBudget(source, RESPONSE_HINT, this.maxResponseBytes);
    const slices: EndpointSlice[] = [];
    let continueToken: string | undefined;
    let resourceVersion = "";
    do {
      const query = new URLSearchParams({ labelSelector: this.#selector(), limit: String(LIST_PAGE_SIZE) });
      if (continueToken !== undefined) {
        query.set("continue", continueToken);
      }
      const page = await withDeadline(signal, this.requestTimeoutMs, source, TIMEOUT_HINT, async (pageSignal) => {
        const response = await this.#request(route, query, pageSignal);

        return parseResponse(listSchema, await budget.readJson(response), source, RESPONSE_HINT);
      });
      slices.push(...(page.items ?? []));
      resourceVersion = page.metadata.resourceVersion;
      continueToken = page.metadata.continue === "" ? undefined : page.metadata.continue;
    } while (continueToken !== undefined);

    return { resourceVersion, slices };
  }

  /**
   * Starts a watch of the service's EndpointSlices from `resourceVersion`, with bookmarks.
   * It resolves once the API server has accepted the watch, with the events, which end
   * when the server ends the watch after `timeoutSeconds` or `signal` aborts.
   *
   * @throws {KubernetesApiError} for an error status, and from the events for a watch
   *   ERROR event (410 when the resource version is too old). RequestTimeoutError when the
   *   response headers do not arrive within the request timeout. Other errors when the
   *   request fails or the stream breaks.
   */
  async watch(route: ApiRoute | undefined, resourceVersion: string, timeoutSeconds: number, signal: AbortSignal): Promise<AsyncGenerator<EndpointSliceEvent>> {
    const query = new URLSearchParams({
      labelSelector: this.#selector(),
      watch: "true",
      resourceVersion,
      allowWatchBookmarks: "true",
      timeoutSeconds: String(timeoutSeconds),
    });
    const source = `Kubernetes watch of ${this.shownUrl(route)}`;
    // The deadline ends with the response headers, so the open stream is then bounded only by
    // `signal`, which the caller sets from the watch's timeoutSeconds.
    const response = await withDeadline(signal, this.requestTimeoutMs, source, TIMEOUT_HINT, (startSignal) => this.#request(route, query, startSignal));

    return parseWatchEvents(response.body, source, this.maxResponseBytes);
  }

  #selector(): string {
    return `kubernetes.io/service-name=${this.service}`;
  }

  /** Returns the URL of the EndpointSlice collection for messages, with a user name and password masked. */
  shownUrl(route: ApiRoute | undefined): string {
    return maskUrlCredentials(this.#url(route, undefined));
  }

  /** Returns the URL of the EndpointSlice collection, with `query` when given. */
  #url(route: ApiRoute | undefined, query: URLSearchParams | undefined): string {
    const base = route?.url ?? this.access.server;
    const path = `${base}/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(this.namespace)}/endpointslices`;

    return query === undefined ? path : `${path}?${query}`;
  }

  async #request(route: ApiRoute | undefined, query: URLSearchParams, signal: AbortSignal): Promise<Response> {
    const url = this.#url(route, query);
    const headers: Record<string, string> = { accept: "application/json" };
    const token = currentBearerToken(this.access);
    if (token !== undefined) {
      headers.authorization = `Bearer ${token}`;
    }

    let response: Response;
    try {
      response = await this.#fetch(url, headers, route, signal);
    } catch (error) {
      if (signal.aborted) {
        throw error;
      }
      // No cause: loggers print causes, and Bun's message is the raw text this replaces.
      throw new Error(`Kubernetes request to ${this.shownUrl(route)} failed: ${describeRequestError(error, this.access.tlsServerName)}`);
    }
    if (!response.ok) {
      const body = await readErrorBody(response);
      const status = parseStatus(body);
      const description = describeHttpStatus(response.status, response.statusText, describeCredentials(this.access), status.reason, status.message);
      throw new KubernetesApiError(`Kubernetes request to ${this.shownUrl(route)} failed: ${description}`, response.status);
    }

    return response;
  }

  #fetch(url: string, headers: Record<string, string>, route: ApiRoute | undefined, signal: AbortSignal): Promise<Response> {
    return fetch(url, {
      headers,
      signal,
      // The API server is reached directly or through tinylb's own listener, never through an HTTP proxy.
      proxy: false,
      unix: route?.unixPath,
      tls: {
        ca: this.access.caPem,
        cert: this.access.clientCertificate?.certPem,
        key: this.access.clientCertificate?.keyPem,
        serverName: this.access.tlsServerName,
      },
    });
  }
}

async function* parseWatchEvents(body: ReadableStream<Uint8Array> | null, source: string, maxObjectChars: number): AsyncGenerator<EndpointSliceEvent> {
  if (body === null) {
    return;
  }

  for await (const raw of readJsonObjects(body, maxObjectChars, source)) {
    const event = parseResponse(watchEventSchema, raw, source, RESPONSE_HINT);
    switch (event.type) {
      case "ADDED":
      case "MODIFIED":
      case "DELETED":
        yield { type: event.type, slice: parseResponse(endpointSliceSchema, event.object, `${source} ${event.type} event`, RESPONSE_HINT) };
        break;
      case "BOOKMARK":
        yield { type: "BOOKMARK", resourceVersion: parseResponse(bookmarkSchema, event.object, `${source} BOOKMARK event`, RESPONSE_HINT).metadata.resourceVersion };
        break;
      case "ERROR":
        throw statusError(parseResponse(statusSchema, event.object, `${source} ERROR event`, RESPONSE_HINT), `${source} sent an ERROR event`);
      default:
        throw new Error(`${source} sent an unknown watch event type "${event.type}"; ${RESPONSE_HINT}`);
    }
  }
}

function parseStatus(body: string): z.infer<typeof statusSchema> {
  try {
    return statusSchema.parse(JSON.parse(body));
  } catch {
    return { message: body.slice(0, 200) };
  }
}

function statusError(status: z.infer<typeof statusSchema>, what: string): KubernetesApiError {
  const code = status.code ?? 0;
  const detail = [status.reason, status.message].filter((part) => part !== undefined && part !== "").join(": ");

  return new KubernetesApiError(`${what} ${code}${detail === "" ? "" : `: ${detail}`}`, code);
}
