import { z } from "zod";
import { describeEtcdRequestError } from "./etcd-errors.ts";
import { readJsonObjects } from "./json-object-stream.ts";
import { REQUEST_TIMEOUT_MS, RequestDeadline, withDeadline } from "./request-deadline.ts";
import { MAX_RESPONSE_BYTES, parseResponse, readErrorBody, ResponseBudget } from "./response-body.ts";

/** TLS settings for `https://` etcd endpoints, PEM text. */
export interface EtcdTls {
  caPem?: string;
  certPem?: string;
  keyPem?: string;
}

/** One key and value under the watched prefix, decoded from the gateway's base64. */
export interface EtcdKeyValue {
  key: string;
  value: string;
  modRevision: number;
}

/** One response of an etcd watch stream. */
export interface EtcdWatchResponse {
  /** Store revision in the response header. */
  revision: number;
  /** Cluster id in the response header, as a decimal string; empty when the header has none. */
  clusterId: string;
  /** True for the first response, which confirms the watch and carries no events. */
  created: boolean;
  events: { type: "PUT" | "DELETE"; kv: EtcdKeyValue }[];
}

/** A watch whose start revision etcd has compacted away; the caller must range again. */
export class EtcdCompactedError extends Error {
  override name = "EtcdCompactedError";

  constructor(readonly compactRevision: number) {
    super(`etcd compacted the history up to revision ${compactRevision}`);
  }
}

// The gateway writes int64 fields as strings and leaves out fields that hold their zero value.
const int64 = z.union([z.string(), z.number()]).transform(Number);
// The cluster id is a uint64, kept as a string, since a JavaScript number cannot hold every value.
const headerSchema = z.object({ revision: int64.optional(), cluster_id: z.union([z.string(), z.number()]).transform(String).optional() }).optional();
const kvSchema = z.object({ key: z.string(), value: z.string().optional(), mod_revision: int64.optional() });
const rangeSchema = z.object({ header: headerSchema, kvs: z.array(kvSchema).optional(), more: z.boolean().optional() });
const watchSchema = z.object({
  result: z
    .object({
      header: headerSchema,
      created: z.boolean().optional(),
      canceled: z.boolean().optional(),
      cancel_reason: z.string().optional(),
      compact_revision: int64.optional(),
      events: z.array(z.object({ type: z.enum(["PUT", "DELETE"]).optional(), kv: kvSchema })).optional(),
    })
    .optional(),
  error: z.object({ message: z.string().optional(), grpc_code: z.number().optional(), http_code: z.number().optional() }).optional(),
});

/** Keys fetched per range request; the following pages read the same revision. */
const RANGE_PAGE_SIZE = 1000;

/**
 * A client of etcd's v3 JSON gateway (`/v3/kv/range` and `/v3/watch`, etcd 3.4 and later)
 * for one key prefix. It sends each request to the current endpoint; `rotate` moves to
 * the next one after a failure.
 */
export class EtcdGateway {
  readonly #endpoints: readonly string[];
  readonly #tls: EtcdTls | undefined;
  readonly #keyBase64: string;
  readonly #rangeEndBase64: string;
  #current = 0;

  /**
   * @param maxResponseBytes limit of one whole range, every page, and of one watch response.
   * @param requestTimeoutMs deadline of each range page, and of a watch until its first response.
   * @throws {Error} when no endpoint is given.
   */
  constructor(
    endpoints: readonly string[],
    readonly prefix: string,
    tls?: EtcdTls,
    private readonly maxResponseBytes = MAX_RESPONSE_BYTES,
    private readonly requestTimeoutMs = REQUEST_TIMEOUT_MS,
  ) {
    if (endpoints.length === 0) {
      throw new Error("invalid etcd gateway: at least one endpoint is required");
    }
    this.#endpoints = endpoints.map((endpoint) => endpoint.replace(/\/+$/, ""));
    this.#tls = tls;
    const key = Buffer.from(prefix, "utf8");
    this.#keyBase64 = key.toString("base64");
    this.#rangeEndBase64 = prefixRangeEnd(key).toString("base64");
  }

  /** The endpoint the next request goes to. */
  get endpoint(): string {
    return this.#endpoints[this.#current]!;
  }

  /** Moves to the next endpoint, after the current one failed. */
  rotate(): void {
    this.#current = (this.#current + 1) % this.#endpoints.length;
  }

  /**
   * Reads every key under the prefix at one revision, a page at a time.
   *
   * @throws {ResponseTooLargeError} when the pages together pass the response limit;
   *   RequestTimeoutError when a page is not read in full within the request timeout;
   *   Error for a network failure or an error response.
   */
  async range(signal: AbortSignal): Promise<{ revision: number; clusterId: string; kvs: EtcdKeyValue[] }> {
    const source = `etcd /v3/kv/range at ${this.endpoint}`;
    const budget = new ResponseBudget(source, this.#responseHint(), this.maxResponseBytes);
    const kvs: EtcdKeyValue[] = [];
    let revision: number | undefined;
    let clusterId = "";
    let key = this.#keyBase64;
    for (;;) {
      const body: Record<string, unknown> = { key, range_end: this.#rangeEndBase64, limit: RANGE_PAGE_SIZE };
      if (revision !== undefined) {
        body.revision = revision;
      }
      const page = await withDeadline(signal, this.requestTimeoutMs, source, this.#timeoutHint(), async (pageSignal) => {
        const response = await this.#post("/v3/kv/range", body, pageSignal);

        return parseResponse(rangeSchema, await budget.readJson(response), source, this.#responseHint());
      });
      revision ??= page.header?.revision ?? 0;
      clusterId ||= page.header?.cluster_id ?? "";
      const decoded = (page.kvs ?? []).map(decodeKeyValue);
      kvs.push(...decoded);

      const last = page.kvs?.at(-1);
      if (page.more !== true || last === undefined) {
        return { revision, clusterId, kvs };
      }
      // The next page starts right after the last key: the key with a zero byte appended.
      key = Buffer.concat([Buffer.from(last.key, "base64"), Buffer.from([0])]).toString("base64");
    }
  }

  /**
   * Watches the prefix from `startRevision`, with progress notifications, and yields each
   * response until `signal` aborts or the stream ends.
   *
   * @throws {EtcdCompactedError} when `startRevision` was compacted; RequestTimeoutError
   *   when the first response does not arrive within the request timeout; other errors when
   *   the watch is canceled, the response is an error or the stream breaks.
   */
  async *watch(startRevision: number, signal: AbortSignal): AsyncGenerator<EtcdWatchResponse> {
    const request = {
      create_request: { key: this.#keyBase64, range_end: this.#rangeEndBase64, start_revision: startRevision, progress_notify: true },
    };
    // The deadline ends with the created response, and the open stream is then bounded by the caller's idle timeout.
    const deadline = new RequestDeadline(signal, this.requestTimeoutMs, `etcd /v3/watch at ${this.endpoint}`, this.#timeoutHint());
    try {
      yield* this.#watchResponses(request, deadline);
    } catch (error) {
      throw deadline.errorFor(error);
    } finally {
      deadline.clear();
    }
  }

  async *#watchResponses(request: unknown, deadline: RequestDeadline): AsyncGenerator<EtcdWatchResponse> {
    const response = await this.#post("/v3/watch", request, deadline.signal);
    if (response.body === null) {
      return;
    }

    const source = `etcd /v3/watch at ${this.endpoint}`;
    for await (const raw of readJsonObjects(response.body, this.maxResponseBytes, source)) {
      deadline.clear();
      const message = parseResponse(watchSchema, raw, source, this.#responseHint());
      if (message.error !== undefined) {
        // Such as "transport is closing" (gRPC code 14, HTTP 503) from a member that is stopping.
        throw new Error(`${source} failed: ${message.error.message ?? "unknown error"}${describeErrorCodes(message.error)}`);
      }
      const result = message.result;
      if (result === undefined) {
        continue;
      }
      if (result.compact_revision !== undefined && result.compact_revision > 0) {
        throw new EtcdCompactedError(result.compact_revision);
      }
      if (result.canceled === true) {
        throw new Error(`${source} was canceled by etcd: ${result.cancel_reason ?? "no reason given"}`);
      }

      yield {
        revision: result.header?.revision ?? 0,
        clusterId: result.header?.cluster_id ?? "",
        created: result.created === true,
        events: (result.events ?? []).map((event) => ({ type: event.type ?? "PUT", kv: decodeKeyValue(event.kv) })),
      };
    }
  }

  #responseHint(): string {
    return `check that ${this.endpoint} is the client URL of an etcd 3.4 or later member (etcd.endpoints), not a proxy or another service`;
  }

  #timeoutHint(): string {
    return `check that etcd serves clients at ${this.endpoint} (etcd.endpoints) and is not overloaded`;
  }

  async #post(path: string, body: unknown, signal: AbortSignal): Promise<Response> {
    const url = `${this.endpoint}${path}`;
    let response: Response;
    try {
      response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        signal,
        proxy: false,
        tls: this.#tls === undefined ? undefined : { ca: this.#tls.caPem, cert: this.#tls.certPem, key: this.#tls.keyPem },
      });
    } catch (error) {
      if (signal.aborted) {
        throw error;
      }
      // No cause: loggers print causes, and Bun's message is the raw text this replaces.
      throw new Error(`etcd ${path} at ${this.endpoint} failed: ${describeEtcdRequestError(error, this.endpoint)}`);
    }
    if (!response.ok) {
      const text = (await readErrorBody(response)).slice(0, 300);
      throw new Error(`etcd ${path} at ${this.endpoint} failed: HTTP ${response.status}: ${text}`);
    }

    return response;
  }
}

/** Returns ` (gRPC code 14, HTTP 503)` for the codes of a gateway error that has them, or "". */
function describeErrorCodes(error: { grpc_code?: number; http_code?: number }): string {
  const codes = [error.grpc_code === undefined ? undefined : `gRPC code ${error.grpc_code}`, error.http_code === undefined ? undefined : `HTTP ${error.http_code}`];
  const known = codes.filter((code) => code !== undefined);

  return known.length === 0 ? "" : ` (${known.join(", ")})`;
}

function decodeKeyValue(kv: z.infer<typeof kvSchema>): EtcdKeyValue {
  return {
    key: Buffer.from(kv.key, "base64").toString("utf8"),
    value: Buffer.from(kv.value ?? "", "base64").toString("utf8"),
    modRevision: kv.mod_revision ?? 0,
  };
}

/**
 * Returns the range end that selects every key starting with `prefix`, as etcd's clientv3
 * computes it. That is the prefix with its last byte below 0xff incremented and the bytes
 * after it dropped. When every byte is 0xff it is a zero byte, which means all keys from
 * `prefix` on.
 */
export function prefixRangeEnd(prefix: Uint8Array): Buffer {
  const end = Buffer.from(prefix);
  for (let index = end.length - 1; index >= 0; index--) {
    if (end[index]! < 0xff) {
      end[index]! += 1;

      return end.subarray(0, index + 1);
    }
  }

  return Buffer.from([0]);
}
