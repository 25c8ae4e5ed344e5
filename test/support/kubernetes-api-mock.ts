import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * A stand-in for kube-apiserver, for tests: no real API server can run in this project's
 * test environment, so this HTTPS server speaks the wire format tinylb reads from one.
 * It serves `discovery.k8s.io/v1` EndpointSlice lists (with `limit` and `continue`) and
 * watches as chunked JSON event lines: ADDED, MODIFIED, DELETED, BOOKMARK, and ERROR
 * with a 410 Status once the requested resource version has left the event history.
 */

/** Certificates made with openssl for one test run, as PEM text and file paths. */
export interface TestCertificates {
  dir: string;
  caPem: string;
  caFile: string;
  /** A CA that signed nothing the server uses, for verification failures. */
  otherCaPem: string;
  serverCertPem: string;
  serverKeyPem: string;
  clientCertPem: string;
  clientKeyPem: string;
  clientCertFile: string;
  clientKeyFile: string;
}

/** The name in the server certificate; the certificate has no IP address entries. */
export const SERVER_NAME = "kubernetes.default.svc";

/** Makes a CA, a server certificate for `SERVER_NAME` and a client certificate with openssl. */
export async function makeCertificates(): Promise<TestCertificates> {
  const dir = mkdtempSync(join(tmpdir(), "tinylb-kube-"));
  const run = async (args: string[]): Promise<void> => {
    const child = Bun.spawn(["openssl", ...args], { cwd: dir, stdout: "ignore", stderr: "pipe" });
    const [stderr, code] = await Promise.all([new Response(child.stderr).text(), child.exited]);
    if (code !== 0) {
      throw new Error(`openssl ${args[0]} failed with exit code ${code}: ${stderr}`);
    }
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

  await run(["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=test-cluster-ca"]);
  await run(["req", "-x509", ...ec, "-keyout", "other-ca.key", "-out", "other-ca.crt", "-days", "1", "-subj", "/CN=other-ca"]);
  await run(["req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=kube-apiserver"]);
  await Bun.write(join(dir, "server.ext"), `subjectAltName=DNS:${SERVER_NAME},DNS:kubernetes\nextendedKeyUsage=serverAuth\n`);
  await run(["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt", "-days", "1", "-extfile", "server.ext"]);
  await run(["req", ...ec, "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=tinylb/O=system:tinylb"]);
  await Bun.write(join(dir, "client.ext"), "extendedKeyUsage=clientAuth\n");
  await run(["x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "client.crt", "-days", "1", "-extfile", "client.ext"]);

  const read = (name: string): string => readFileSync(join(dir, name), "utf8");

  return {
    dir,
    caPem: read("ca.crt"),
    caFile: join(dir, "ca.crt"),
    otherCaPem: read("other-ca.crt"),
    serverCertPem: read("server.crt"),
    serverKeyPem: read("server.key"),
    clientCertPem: read("client.crt"),
    clientKeyPem: read("client.key"),
    clientCertFile: join(dir, "client.crt"),
    clientKeyFile: join(dir, "client.key"),
  };
}

/** Removes the certificate directory. */
export function removeCertificates(certificates: TestCertificates): void {
  rmSync(certificates.dir, { recursive: true, force: true });
}

/** One endpoint of a test EndpointSlice. */
export interface TestEndpoint {
  addresses: string[];
  /** Omit to leave the ready condition unset, which readers treat as ready. */
  ready?: boolean;
}

/** The fields of a test EndpointSlice; the rest is filled in as the API server does. */
export interface TestSlice {
  name: string;
  addressType?: "IPv4" | "IPv6" | "FQDN";
  endpoints: TestEndpoint[];
  ports: { name: string; port: number }[];
}

/** A request the mock received. */
export interface RecordedRequest {
  kind: "list" | "watch";
  query: URLSearchParams;
  authorization: string | null;
}

interface HistoryEvent {
  resourceVersion: number;
  type: "ADDED" | "MODIFIED" | "DELETED";
  object: Record<string, unknown>;
}

interface OpenWatch {
  response: ServerResponse;
  bookmarks: boolean;
}

/** Settings of the mock API server. */
export interface MockOptions {
  certificates: TestCertificates;
  /** Require a client certificate signed by the test CA. @default false */
  requireClientCertificate?: boolean;
  /** When set, every request must carry `Authorization: Bearer` with the value this returns. */
  expectedToken?: () => string;
  /** Maximum page size of a list response, whatever the request's `limit`. @default 500 */
  pageSize?: number;
}

/** Bound of the bytes of endless bodies that one mock sends, so a client without a limit still finishes. */
const ENDLESS_BODY_MAX_BYTES = 256 * 1024 * 1024;

const SLICES_PATH = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";

/** The mock API server; see the file comment. */
export class KubernetesApiMock {
  readonly requests: RecordedRequest[] = [];
  readonly #slices = new Map<string, Record<string, unknown>>();
  readonly #history: HistoryEvent[] = [];
  readonly #watches = new Set<OpenWatch>();
  readonly #options: MockOptions;
  #server!: Server;
  #resourceVersion = 100;
  /** Watches from a resource version below this one get 410. */
  #oldestWatchable = 0;
  /** When set, requests of this kind fail with this HTTP status. */
  failWith: { kind: "list" | "watch"; status: number; body?: string } | undefined;
  /**
   * When set, requests of this kind get 200 and a JSON string that does not end, written
   * until the client closes the connection or `ENDLESS_BODY_MAX_BYTES` have been sent.
   */
  endlessBody: "list" | "watch" | undefined;
  /** When true, each watch sends its history events and one BOOKMARK, then ends, as a proxy that cuts streams might. */
  endAfterBookmark = false;
  /** When set, each list gets 200 with this body, such as an HTML page of a proxy. */
  listBody: string | undefined;
  /** When set, requests of this kind get no response at all until the mock stops. */
  hang: "list" | "watch" | undefined;
  /** Bytes of endless bodies written so far, in all requests. */
  endlessBytesSent = 0;

  private constructor(options: MockOptions) {
    this.#options = options;
  }

  /**
   * Starts the mock on 127.0.0.1 with a kernel-chosen port. It uses `node:https` rather
   * than `Bun.serve` because a watch must send its headers before the first event, as
   * kube-apiserver does, and `Bun.serve` delays them until the body starts.
   */
  static async start(options: MockOptions): Promise<KubernetesApiMock> {
    const mock = new KubernetesApiMock(options);
    const requireCertificate = options.requireClientCertificate === true;
    mock.#server = createServer(
      {
        cert: options.certificates.serverCertPem,
        key: options.certificates.serverKeyPem,
        ca: requireCertificate ? options.certificates.caPem : undefined,
        requestCert: requireCertificate,
        rejectUnauthorized: requireCertificate,
      },
      (request, response) => mock.#handle(request, response),
    );
    await new Promise<void>((resolve) => mock.#server.listen(0, "127.0.0.1", resolve));

    return mock;
  }

  /** Base URL, `https://127.0.0.1:PORT`. */
  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** Current resource version of the mock's store. */
  get resourceVersion(): string {
    return String(this.#resourceVersion);
  }

  /** Watches currently open. */
  get openWatches(): number {
    return this.#watches.size;
  }

  /** Requests of one kind received so far. */
  requestsOf(kind: "list" | "watch"): RecordedRequest[] {
    return this.requests.filter((request) => request.kind === kind);
  }

  /** Creates or replaces a slice and sends ADDED or MODIFIED to open watches. */
  apply(slice: TestSlice): void {
    const type = this.#slices.has(slice.name) ? "MODIFIED" : "ADDED";
    this.#resourceVersion++;
    const object = sliceObject(slice, this.#resourceVersion);
    this.#slices.set(slice.name, object);
    this.#record({ resourceVersion: this.#resourceVersion, type, object });
  }

  /** Deletes a slice and sends DELETED to open watches. */
  delete(name: string): void {
    const object = this.#slices.get(name);
    if (object === undefined) {
      throw new Error(`no slice "${name}" in the mock`);
    }
    this.#slices.delete(name);
    this.#resourceVersion++;
    const deleted = { ...object, metadata: { ...(object.metadata as object), resourceVersion: String(this.#resourceVersion) } };
    this.#record({ resourceVersion: this.#resourceVersion, type: "DELETED", object: deleted });
  }

  /** Moves the resource version on without an event for the service, as changes to other objects do. */
  advance(steps = 1): void {
    this.#resourceVersion += steps;
  }

  /** Sends a BOOKMARK with the current resource version to watches that asked for bookmarks. */
  bookmark(): void {
    const event = {
      type: "BOOKMARK",
      object: { kind: "EndpointSlice", apiVersion: "discovery.k8s.io/v1", metadata: { resourceVersion: this.resourceVersion } },
    };
    for (const watch of this.#watches) {
      if (watch.bookmarks) {
        send(watch, event);
      }
    }
  }

  /** Forgets the event history, so watching from any older resource version gets 410 Gone. */
  expireHistory(): void {
    this.#history.length = 0;
    this.#oldestWatchable = this.#resourceVersion;
  }

  /** Sends `text` as it is to every open watch, such as an event of the wrong shape. */
  sendRaw(text: string): void {
    for (const watch of this.#watches) {
      watch.response.write(text);
    }
  }

  /** Ends every open watch stream cleanly, as the server does when `timeoutSeconds` is up. */
  endWatches(): void {
    for (const watch of this.#watches) {
      watch.response.end();
    }
    this.#watches.clear();
  }

  /** Breaks every open watch connection, as a lost connection does. */
  dropWatches(): void {
    for (const watch of this.#watches) {
      watch.response.socket?.destroy();
    }
    this.#watches.clear();
  }

  /** Closes every connection and stops listening. */
  async stop(): Promise<void> {
    this.dropWatches();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #handle(request: IncomingMessage, response: ServerResponse): void {
    const url = new URL(request.url ?? "/", "https://mock");
    const watch = url.searchParams.get("watch") === "true" || url.searchParams.get("watch") === "1";
    const kind = watch ? "watch" : "list";
    const authorization = request.headers.authorization ?? null;
    this.requests.push({ kind, query: url.searchParams, authorization });

    if (this.#options.expectedToken !== undefined && authorization !== `Bearer ${this.#options.expectedToken()}`) {
      return sendStatus(response, 401, "Unauthorized", "Unauthorized");
    }
    if (url.pathname !== SLICES_PATH || url.searchParams.get("labelSelector") !== "kubernetes.io/service-name=kubernetes") {
      return sendStatus(response, 404, "NotFound", `the mock serves only ${SLICES_PATH} for the kubernetes service`);
    }
    if (this.failWith?.kind === kind) {
      return sendStatus(response, this.failWith.status, "InternalError", this.failWith.body ?? "failure injected by the test");
    }

    if (this.hang === kind) {
      return;
    }
    if (kind === "list" && this.listBody !== undefined) {
      response.writeHead(200, { "content-type": "text/html" });
      response.end(this.listBody);

      return;
    }
    if (this.endlessBody === kind) {
      return this.#sendEndless(response);
    }
    if (watch) {
      this.#watch(url.searchParams, response);
    } else {
      this.#list(url.searchParams, response);
    }
  }

  #list(query: URLSearchParams, response: ServerResponse): void {
    const names = [...this.#slices.keys()].sort();
    const limit = Math.min(Number(query.get("limit") ?? names.length) || names.length, this.#options.pageSize ?? 500);
    const start = Number(query.get("continue") ?? "0");
    const page = names.slice(start, start + limit);
    const next = start + limit < names.length ? String(start + limit) : undefined;

    sendJson(response, 200, {
      kind: "EndpointSliceList",
      apiVersion: "discovery.k8s.io/v1",
      metadata: { resourceVersion: this.resourceVersion, ...(next === undefined ? {} : { continue: next }) },
      items: page.map((name) => this.#slices.get(name)),
    });
  }

  #watch(query: URLSearchParams, response: ServerResponse): void {
    const from = Number(query.get("resourceVersion") ?? "0");
    const watch: OpenWatch = { response, bookmarks: query.get("allowWatchBookmarks") === "true" };
    // Without a content length, node sends the body with chunked transfer encoding.
    response.writeHead(200, { "content-type": "application/json" });
    response.flushHeaders();

    if (from < this.#oldestWatchable) {
      // kube-apiserver responds to an expired resource version with 200 and one ERROR event.
      send(watch, {
        type: "ERROR",
        object: { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message: `too old resource version: ${from} (${this.#oldestWatchable})`, reason: "Expired", code: 410 },
      });
      response.end();

      return;
    }

    for (const event of this.#history.filter((candidate) => candidate.resourceVersion > from)) {
      send(watch, { type: event.type, object: event.object });
    }
    if (this.endAfterBookmark) {
      send(watch, { type: "BOOKMARK", object: { kind: "EndpointSlice", apiVersion: "discovery.k8s.io/v1", metadata: { resourceVersion: this.resourceVersion } } });
      response.end();

      return;
    }
    this.#watches.add(watch);
    response.on("close", () => this.#watches.delete(watch));
  }

  #sendEndless(response: ServerResponse): void {
    response.writeHead(200, { "content-type": "application/json" });
    response.write('{"kind":"EndpointSliceList","metadata":{"resourceVersion":"1"},"padding":"');
    const chunk = "x".repeat(64 * 1024);
    const writeMore = (): void => {
      while (!response.destroyed && this.endlessBytesSent < ENDLESS_BODY_MAX_BYTES) {
        this.endlessBytesSent += chunk.length;
        if (!response.write(chunk)) {
          response.once("drain", writeMore);

          return;
        }
      }
      response.end();
    };
    writeMore();
  }

  #record(event: HistoryEvent): void {
    this.#history.push(event);
    for (const watch of this.#watches) {
      send(watch, { type: event.type, object: event.object });
    }
  }
}

function send(watch: OpenWatch, event: unknown): void {
  if (!watch.response.writableEnded) {
    watch.response.write(JSON.stringify(event) + "\n");
  }
}

function sliceObject(slice: TestSlice, resourceVersion: number): Record<string, unknown> {
  return {
    kind: "EndpointSlice",
    apiVersion: "discovery.k8s.io/v1",
    metadata: {
      name: slice.name,
      namespace: "default",
      uid: `00000000-0000-4000-8000-${String(resourceVersion).padStart(12, "0")}`,
      resourceVersion: String(resourceVersion),
      generation: 1,
      creationTimestamp: "2026-01-01T00:00:00Z",
      labels: { "kubernetes.io/service-name": "kubernetes", "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io" },
    },
    addressType: slice.addressType ?? "IPv4",
    endpoints: slice.endpoints.map((endpoint) => ({
      addresses: endpoint.addresses,
      ...(endpoint.ready === undefined ? {} : { conditions: { ready: endpoint.ready, serving: endpoint.ready, terminating: false } }),
    })),
    ports: slice.ports.map((port) => ({ name: port.name, protocol: "TCP", port: port.port })),
  };
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  response.end(text);
}

function sendStatus(response: ServerResponse, code: number, reason: string, message: string): void {
  sendJson(response, code, { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code });
}
