import { formatAddress, type TcpAddress } from "./address.ts";
import { AdminRequestError, requestPath } from "./admin-request.ts";
import { type ReadOnlyRouteContext, routeReadOnlyRequest } from "./admin-routes.ts";
import { bindTcp } from "./admin-server.ts";
import { handleHttpRequest } from "./http-request-handler.ts";
import { readDescriptorLimit } from "./descriptor-budget.ts";
import { httpConnectionCap } from "./http-connection-cap.ts";
import type { HttpServer } from "./http-server.ts";
import { type Logger, silentLogger } from "./logger.ts";

/** Settings of the metrics server. */
export interface MetricsServerOptions {
  /** A TCP address, loopback or not; port 0 lets the kernel pick. */
  address: TcpAddress;
  context: ReadOnlyRouteContext;
  /** @default a logger that writes nothing */
  logger?: Logger;
}

/**
 * The metrics server: an HTTP server on a TCP address that serves GET and HEAD of `/metrics`,
 * `/healthz` and `/readyz` as the admin API does, for scrapers such as Prometheus that cannot
 * reach a Unix socket. No route changes state, so it takes no token and any address is allowed.
 * Any other path gets 404, and another method on those three paths gets 405.
 */
export class MetricsServer {
  readonly address: TcpAddress;
  readonly #http: HttpServer;
  readonly #log: Logger;

  private constructor(address: TcpAddress, http: HttpServer, log: Logger) {
    this.address = address;
    this.#http = http;
    this.#log = log;
  }

  /** The bound address in canonical form, with the real port. */
  get name(): string {
    return formatAddress(this.address);
  }

  /** Connections closed at accept because the cap (`httpConnectionCap`) was reached, since start. */
  get rejectedConnections(): number {
    return this.#http.rejectedConnections;
  }

  /**
   * Binds the server.
   *
   * @throws {ListenError} when the address cannot be bound, naming it and `--metrics`.
   */
  static async start(options: MetricsServerOptions): Promise<MetricsServer> {
    const { address, context } = options;
    const log = (options.logger ?? silentLogger).with({ component: "metrics" });
    const fetch = (request: Request): Promise<Response> => handleHttpRequest(request, () => routeMetricsRequest(request, context), log);

    // A scraper such as Prometheus keeps one connection open, so even the smallest cap fits a few.
    const maxConnections = httpConnectionCap(readDescriptorLimit());
    const http = await bindTcp("--metrics", address, { subject: "metrics server", maxConnections, fetch, log });
    const server = new MetricsServer({ kind: "tcp", host: address.host, port: http.port ?? address.port }, http, log);
    log.info("metrics server listening", { listener: server.name, maxConnections });

    return server;
  }

  /**
   * Stops accepting scrapes and lets the open requests finish, so that a new tinylb can bind
   * the address while this one drains.
   */
  release(): void {
    this.#http.release();
    this.#log.info("metrics server stopped listening, so a new tinylb can take its address", { listener: this.name });
  }

  /** Stops the server, closing open requests. */
  async stop(): Promise<void> {
    await this.#http.stop();
    this.#log.debug("metrics server stopped", { listener: this.name });
  }
}

/**
 * Serves the read-only routes of the admin API and nothing else.
 *
 * @throws {AdminRequestError} 404 for another path, 405 for a method other than GET or HEAD.
 */
async function routeMetricsRequest(request: Request, context: ReadOnlyRouteContext): Promise<Response> {
  const response = await routeReadOnlyRequest(request, context);
  if (response === undefined) {
    const path = requestPath(request);
    throw new AdminRequestError(404, `no route for ${path} on the metrics server, which serves only /metrics, /healthz and /readyz; the admin API (--admin) serves the rest`);
  }

  return response;
}
