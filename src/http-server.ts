import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { json } from "./admin-request.ts";
import { ConnectionCapLog } from "./connection-cap-log.ts";
import { sendFetchResponse, toFetchRequest } from "./fetch-adapter.ts";
import type { Logger } from "./logger.ts";
import { RateLimitedLog } from "./rate-limited-log.ts";

/** The handler of an HTTP server: one request in, its response out. `client` is the peer's IP address, or "unix". */
export type Fetch = (request: Request, client: string) => Promise<Response>;

/** The address of an HTTP server: a TCP host and port (0 lets the kernel pick), or a Unix socket path. */
export type HttpListenAddress = { host: string; port: number } | { path: string };

/** Settings of an `HttpServer`. */
export interface HttpServerOptions {
  /** The server's name at the start of its log lines, such as "admin API". */
  subject: string;
  /** Maximum number of open connections. A connection above it is closed at accept. */
  maxConnections: number;
  fetch: Fetch;
  log: Logger;
}

/**
 * Milliseconds a connection may go without a request, or a response being sent, before it is
 * closed: 10 s, as Bun.serve's default `idleTimeout` that these servers had before.
 * Bytes of an unfinished request line or header do not reset it, so it also ends a slow client.
 */
const IDLE_TIMEOUT_MS = 10_000;

/** Milliseconds a client may take to send a request's headers, against a slowloris client. */
const HEADERS_TIMEOUT_MS = 10_000;

/** Milliseconds a client may take to send a whole request: room for a 1 MiB body on a slow link. */
const REQUEST_TIMEOUT_MS = 30_000;

/** How often node:http checks the header and request timeouts, which bounds how late they act. */
const TIMEOUT_CHECK_MS = 1_000;

/**
 * Bytes of an unread request body that are read and discarded after the response, so that
 * the client can read the response before the connection closes. A larger rest closes the
 * connection at once, which may cost the client the response.
 */
const MAX_DISCARDED_BODY_BYTES = 16 * 1024 * 1024;

/**
 * Replies to the requests that node:http rejects before a handler runs, by the error code of
 * its `clientError` event. Each names the problem in a plain-text body, because the default
 * reply of node:http in Bun 1.4.4 has a status line and no body.
 */
const CLIENT_ERROR_REPLIES: Record<string, string> = {
  HPE_HEADER_OVERFLOW: "431 Request Header Fields Too Large",
  // Chunk extensions over the parser's limit, for which Node.js's default reply is a 413 too.
  HPE_CHUNK_EXTENSIONS_OVERFLOW: "413 Content Too Large",
  // The header or request timeout (HEADERS_TIMEOUT_MS, REQUEST_TIMEOUT_MS) ran out.
  ERR_HTTP_REQUEST_TIMEOUT: "408 Request Timeout",
};

/** The reply to a parser error (`HPE_*`) that CLIENT_ERROR_REPLIES does not list. */
const MALFORMED_REQUEST_REPLY = "400 Bad Request: malformed HTTP request";

/** Parser error of a client that closed its side in the middle of a request: an abort, which gets no reply. */
const CLIENT_ABORT = "HPE_INVALID_EOF_STATE";

/**
 * An HTTP/1.1 server on node:http for the admin API and the metrics server, with a cap on open
 * connections, which Bun.serve lacks (Bun 1.4.4). A connection over the cap is closed at accept
 * (`server.maxConnections`), so that a flood of connections cannot take every file descriptor
 * from the listeners. Over TCP, Bun accepts a connection only once its first bytes arrive, or
 * after a few seconds without any, and the cap applies then. Requests are served by a
 * fetch-style handler.
 *
 * An error that escapes the handler (a bug) gets a JSON 500 and an error line at most every
 * 10 s, never a stack trace in the response. A request that node:http rejects itself, such as
 * one that is not HTTP or has headers over its size limit, gets a short plain-text reply that
 * names the problem, and the connection closes.
 */
export class HttpServer {
  readonly #server: Server;
  readonly #options: HttpServerOptions;
  readonly #capLog: ConnectionCapLog;
  readonly #failures: RateLimitedLog;
  readonly #open = new Set<Socket>();
  /** The response of each connection's latest request, so a client error does not write into one already begun. */
  readonly #responses = new WeakMap<Socket, ServerResponse>();
  #closed: Promise<void> | undefined;

  private constructor(server: Server, options: HttpServerOptions) {
    this.#server = server;
    this.#options = options;
    this.#capLog = new ConnectionCapLog(options.log, options.subject, options.maxConnections);
    this.#failures = new RateLimitedLog(options.log, "error", 10_000);
    server.on("request", (incoming: IncomingMessage, outgoing: ServerResponse) => void this.#serve(incoming, outgoing));
    server.on("connection", (socket: Socket) => this.#track(socket));
    server.on("drop", () => this.#capLog.connectionRejected());
    server.on("clientError", (error: NodeJS.ErrnoException, socket: Socket) => this.#rejectClientError(error, socket));
  }

  /**
   * Binds a server on `address`. A Unix socket is created with mode 0600 (under a umask of
   * 0177), so no other user can connect to it at any moment.
   *
   * @throws {Error} the bind error, with its errno `code` (such as EADDRINUSE).
   */
  static async listen(address: HttpListenAddress, options: HttpServerOptions): Promise<HttpServer> {
    // Loaded on first use, so that a tinylb with neither server never loads node:http.
    const { createServer } = await import("node:http");
    const server = createServer({
      requireHostHeader: false,
      headersTimeout: HEADERS_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      keepAliveTimeout: IDLE_TIMEOUT_MS,
      connectionsCheckingInterval: TIMEOUT_CHECK_MS,
    });
    server.maxConnections = options.maxConnections;
    server.timeout = IDLE_TIMEOUT_MS;
    const http = new HttpServer(server, options);

    const { promise, resolve, reject } = Promise.withResolvers<HttpServer>();
    server.once("error", reject);
    server.once("listening", () => {
      server.off("error", reject);
      server.on("error", (error) => options.log.error(`${options.subject} failed`, { err: error }));
      resolve(http);
    });
    if ("path" in address) {
      // Bun 1.4.4 binds inside `listen`, before it returns, so no other code runs while the
      // process-wide umask is changed.
      const previous = process.umask(0o177);
      try {
        server.listen(address.path);
      } finally {
        process.umask(previous);
      }
    } else {
      server.listen(address.port, address.host);
    }

    return promise;
  }

  /** The bound TCP port, or undefined on a Unix socket. */
  get port(): number | undefined {
    const bound = this.#server.address();

    return typeof bound === "object" && bound !== null ? bound.port : undefined;
  }

  /** Connections open now, each counted from its accept to its close. */
  get openConnections(): number {
    return this.#open.size;
  }

  /** Connections closed at accept because the cap was reached, since start. */
  get rejectedConnections(): number {
    return this.#capLog.rejected;
  }

  /** Stops accepting, freeing the address, and lets the open requests finish. */
  release(): void {
    void this.#close();
  }

  /** Stops accepting and closes every connection, open requests included. */
  async stop(): Promise<void> {
    const closed = this.#close();
    this.#server.closeAllConnections();
    await closed;
  }

  #close(): Promise<void> {
    this.#closed ??= new Promise((resolve) => this.#server.close(() => resolve()));

    return this.#closed;
  }

  #track(socket: Socket): void {
    if (this.#open.has(socket)) {
      return;
    }
    this.#open.add(socket);
    socket.once("close", () => {
      this.#open.delete(socket);
      this.#capLog.connectionClosed(this.#open.size);
    });
  }

  /**
   * Replies to a request that node:http rejected before the handler, with a status line and a
   * plain-text body from CLIENT_ERROR_REPLIES, then closes the connection. A client that reset
   * the connection or closed it in the middle of a request, and a connection whose response has
   * begun, are closed without a reply.
   */
  #rejectClientError(error: NodeJS.ErrnoException, socket: Socket): void {
    const code = error.code ?? "";
    const reply = CLIENT_ERROR_REPLIES[code] ?? (code.startsWith("HPE_") && code !== CLIENT_ABORT ? MALFORMED_REQUEST_REPLY : undefined);
    if (reply !== undefined) {
      this.#options.log.debug("HTTP request rejected", { client: socket.remoteAddress || "unix", code, err: error });
    }
    const response = this.#responses.get(socket);
    const responding = response !== undefined && response.headersSent && !response.writableFinished;
    if (reply === undefined || responding || !socket.writable) {
      socket.destroy();

      return;
    }

    const status = reply.split(":")[0]!;
    const body = `${reply}\n`;
    socket.write(`HTTP/1.1 ${status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    socket.end();
  }

  async #serve(incoming: IncomingMessage, outgoing: ServerResponse): Promise<void> {
    this.#responses.set(incoming.socket, outgoing);
    let request: Request;
    try {
      request = toFetchRequest(incoming);
    } catch (error) {
      this.#options.log.debug("HTTP request rejected", { method: incoming.method, err: error });
      await this.#send(incoming, outgoing, json(400, { error: `invalid request: ${(error as Error).message}` }));

      return;
    }

    await this.#send(incoming, outgoing, await this.#respond(request, incoming), request);
  }

  async #respond(request: Request, incoming: IncomingMessage): Promise<Response> {
    const client = incoming.socket.remoteAddress || "unix";
    try {
      return await this.#options.fetch(request, client);
    } catch (error) {
      // A body read fails when the client stops sending it and the idle timeout closes the
      // connection, or when the client closes it: no response can reach that client.
      if (!incoming.complete && incoming.socket.destroyed) {
        this.#options.log.debug("HTTP request abandoned: the connection closed before the request arrived whole", { client, method: incoming.method, url: incoming.url, err: error });

        return json(400, { error: "the connection closed before the request arrived whole" });
      }
      this.#failures.log("invariant violated: HTTP request failed", { err: error });

      return json(500, { error: "internal error; see the tinylb log" });
    }
  }

  async #send(incoming: IncomingMessage, outgoing: ServerResponse, response: Response, request?: Request): Promise<void> {
    // A body the handler left unread (past the body cap, or on a route without a body) ends the connection.
    const unread = !incoming.complete;
    if (unread) {
      request?.body?.cancel().catch(() => {});
      discardBody(incoming);
    }
    try {
      await sendFetchResponse(outgoing, response, unread ? { connection: "close" } : {});
    } catch (error) {
      this.#failures.log("invariant violated: HTTP response failed", { err: error });
      outgoing.destroy();
    }
  }
}

/** Reads and drops the rest of a request body, and closes the connection once more than `MAX_DISCARDED_BODY_BYTES` arrived. */
function discardBody(incoming: IncomingMessage): void {
  let discarded = 0;
  incoming.on("data", (chunk: Buffer) => {
    discarded += chunk.byteLength;
    if (discarded > MAX_DISCARDED_BODY_BYTES) {
      incoming.socket.destroy();
    }
  });
  incoming.resume();
}
