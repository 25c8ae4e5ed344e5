import { chmodSync, lstatSync, renameSync, rmSync, statSync, unlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import { type Address, formatAddress, isLocalAddress, type TcpAddress } from "./address.ts";
import { json, requestPath } from "./admin-request.ts";
import { type AdminRouteContext, routeAdminRequest } from "./admin-routes.ts";
import { adminSocketOwnerProblem, prepareAdminSocketFolder } from "./admin-socket-access.ts";
import { AdminToken, readTokenFile } from "./admin-token.ts";
import { ConfigError } from "./config.ts";
import { describeListenError, ListenError, removeStaleSocket } from "./listener.ts";
import { MAX_SOCKET_PATH_BYTES, socketPathProblem } from "./socket-path.ts";
import { type Logger, silentLogger } from "./logger.ts";
import { RateLimitedLog } from "./rate-limited-log.ts";
import { handleHttpRequest } from "./http-request-handler.ts";
import { readDescriptorLimit } from "./descriptor-budget.ts";
import { httpConnectionCap } from "./http-connection-cap.ts";
import { HttpServer, type HttpServerOptions } from "./http-server.ts";
import { outgoingPortHint } from "./port-holder.ts";

/** Settings of the admin API server. */
export interface AdminServerOptions {
  /** A Unix socket (created with mode 0600) or a TCP address; port 0 lets the kernel pick. */
  address: Address;
  /**
   * Allows a TCP address outside the loopback range; `tokenFile` is then required too.
   * @default false
   */
  allowPublic?: boolean;
  /** File holding the bearer token every request must carry; optional on loopback and Unix sockets. */
  tokenFile?: string;
  context: AdminRouteContext;
  /** @default a logger that writes nothing */
  logger?: Logger;
}

/**
 * Checks that the admin API may bind `address`. Unix sockets with an absolute path that fits
 * a socket address and loopback TCP addresses are always allowed, and any other TCP address
 * only with `allowPublic` and a token file.
 *
 * @throws {ConfigError} naming the address and the fix.
 */
export function checkAdminAddress(address: Address, allowPublic: boolean, tokenFile: string | undefined): void {
  const problem = address.kind === "unix" ? socketPathProblem(address.path) : undefined;
  if (problem !== undefined) {
    throw new ConfigError(`admin API address ${formatAddress(address)} rejected: ${problem}`);
  }
  if (isLocalAddress(address)) {
    return;
  }

  const name = formatAddress(address);
  if (!allowPublic) {
    throw new ConfigError(`admin API address ${name} rejected: it is not a loopback address; pass --admin-allow-public and --admin-token-file FILE to expose it`);
  }
  if (tokenFile === undefined) {
    throw new ConfigError(`admin API address ${name} rejected: a non-loopback admin API needs a bearer token; pass --admin-token-file FILE`);
  }
}

/**
 * The admin API: an HTTP server on a Unix socket or a TCP address, serving the routes of
 * `routeAdminRequest`. With a token, every request must carry `Authorization: Bearer
 * TOKEN`; the token is compared in constant time and never logged.
 */
export class AdminServer {
  readonly address: Address;
  readonly #http: HttpServer;
  readonly #log: Logger;
  /** Inode of the Unix socket this server created, so `stop` never removes a successor's socket. */
  readonly #socketIno: number | undefined;
  /** The token every request must carry; undefined without a token file. */
  readonly #token: AdminToken | undefined;

  private constructor(address: Address, http: HttpServer, log: Logger, token: AdminToken | undefined) {
    this.address = address;
    this.#http = http;
    this.#log = log;
    this.#socketIno = address.kind === "unix" ? statSync(address.path).ino : undefined;
    this.#token = token;
  }

  /** Reads the token file again (SIGHUP), so a rotated token applies without a restart. See `AdminToken.reload`. */
  reloadToken(): void {
    this.#token?.reload(this.#log);
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
   * Checks the address, reads the token and binds the server.
   *
   * @throws {ConfigError} for a non-loopback address without the flags, or a bad token file.
   * @throws {ListenError} when the address cannot be bound.
   */
  static async start(options: AdminServerOptions): Promise<AdminServer> {
    const { address, context } = options;
    checkAdminAddress(address, options.allowPublic ?? false, options.tokenFile);
    const token = options.tokenFile === undefined ? undefined : readTokenFile(options.tokenFile);
    const log = (options.logger ?? silentLogger).with({ component: "admin" });
    const rejected = new RateLimitedLog(log, "warn", 10_000);
    const access = token === undefined ? undefined : new AdminToken(options.tokenFile!, token);

    const fetch = async (request: Request, client: string): Promise<Response> => {
      if (access !== undefined && !access.authorizes(request)) {
        rejected.log("admin request rejected: missing or invalid bearer token", { client, path: requestPath(request) });

        return json(401, { error: "missing or invalid bearer token" }, { "www-authenticate": "Bearer" });
      }

      return handleHttpRequest(request, () => routeAdminRequest(request, context), log);
    };

    // Its callers are few (tinylb commands, a supervisor's health checks, a scraper or two).
    const serving: HttpServerOptions = { subject: "admin API", maxConnections: httpConnectionCap(readDescriptorLimit()), fetch, log };
    const http = address.kind === "unix" ? await bindUnix(address.path, serving, token) : await bindTcp("--admin", address, serving);
    const bound: Address = address.kind === "unix" ? address : { kind: "tcp", host: address.host, port: http.port ?? address.port };
    const server = new AdminServer(bound, http, log, access);
    log.info("admin API listening", { listener: server.name, token: token === undefined ? "none" : "required", maxConnections: serving.maxConnections });

    return server;
  }

  /**
   * Stops the server, closing open requests, and removes its Unix socket, unless a new tinylb
   * has taken the path over meanwhile.
   */
  async stop(): Promise<void> {
    await this.#http.stop();
    if (this.address.kind === "unix") {
      try {
        const stats = lstatSync(this.address.path);
        if (stats.isSocket() && stats.ino === this.#socketIno) {
          unlinkSync(this.address.path);
        }
      } catch {
        // Already gone.
      }
    }
    this.#log.debug("admin API stopped", { listener: this.name });
  }
}

/**
 * Returns true when the admin API on the Unix socket `path` reports that its tinylb drains
 * after a stop signal. That tinylb accepts no clients any more, so a new one may take the path.
 */
async function servesDrainingTinylb(path: string, token: string | undefined): Promise<boolean> {
  try {
    const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
    const response = await fetch("http://localhost/readyz", { unix: path, headers, signal: AbortSignal.timeout(2000) } as RequestInit);
    const body = (await response.json()) as { status?: unknown };

    return response.status === 503 && body.status === "draining";
  } catch {
    return false;
  }
}

/**
 * Binds the admin API on the Unix socket `path`. The socket is bound under a temporary name in
 * the same folder and renamed onto `path`. Bun removes a Unix socket's bind path when its server
 * stops, so a draining tinylb whose path was taken over removes only its own temporary name.
 * A path whose temporary name would be too long for a socket is bound directly.
 * NOTE: a tinylb bound directly removes its successor's socket when it stops.
 */
async function bindUnix(path: string, options: HttpServerOptions, token: string | undefined): Promise<HttpServer> {
  let takeOver = false;
  try {
    prepareAdminSocketFolder(path);
    // The probe below sends the token, so a socket of another user gets no request at all.
    const foreign = adminSocketOwnerProblem(path);
    if (foreign !== undefined) {
      throw new Error(foreign);
    }
    takeOver = await servesDrainingTinylb(path, token);
    if (!takeOver) {
      await removeStaleSocket(path);
    }
  } catch (error) {
    throw adminSocketError(path, error);
  }

  const temporary = join(dirname(path), `.tinylb-admin-${process.pid}.sock`);
  const bindPath = Buffer.byteLength(temporary) <= MAX_SOCKET_PATH_BYTES ? temporary : path;
  try {
    if (bindPath !== path || takeOver) {
      rmSync(bindPath, { force: true });
    }
  } catch (error) {
    throw adminSocketError(path, error);
  }
  // HttpServer creates the socket as 0600, so it is never reachable by others, even for a moment.
  let http: HttpServer;
  try {
    http = await HttpServer.listen({ path: bindPath }, options);
  } catch (error) {
    throw adminSocketError(path, error);
  }
  try {
    // rename(2) replaces a draining tinylb's socket in one step, so the path always leads to a server.
    if (bindPath !== path) {
      renameSync(bindPath, path);
    }
    chmodSync(path, 0o600);
  } catch (error) {
    await http.stop();
    throw adminSocketError(path, error);
  }
  if (takeOver) {
    options.log.info("admin socket taken over from a draining tinylb", { listener: `unix:${path}` });
  }

  return http;
}

/**
 * Describes a failed step of binding the admin API's socket at `path`, with the cause and the
 * fix where the errno code identifies them, as a listen socket's errors do.
 */
export function adminSocketError(path: string, error: unknown): ListenError {
  if (error instanceof ListenError) {
    return new ListenError(`admin API ${error.message}`, { cause: error });
  }
  // mkdir -p of a folder whose path runs through a file fails with EEXIST, where bind(2) gives ENOTDIR.
  const cause = (error as { code?: unknown })?.code === "EEXIST" ? { code: "ENOTDIR" } : error;

  return new ListenError(`admin API listen on unix:${path} failed: ${describeListenError(cause, { kind: "unix", path })}`, { cause: error });
}

/**
 * Binds an HTTP server on a TCP address, for the admin API or the metrics server.
 *
 * @param flag the flag that sets the address, named in an error.
 * @throws {ListenError} naming the server (`options.subject`), the address and the flag.
 */
export async function bindTcp(flag: string, address: TcpAddress, options: HttpServerOptions): Promise<HttpServer> {
  try {
    return await HttpServer.listen({ host: address.host, port: address.port }, options);
  } catch (error) {
    throw tcpBindError(options.subject, flag, address, error);
  }
}

/**
 * Describes a failed bind of the admin API or the metrics server (`subject`) on the TCP
 * `address`, with the cause where the errno code identifies it and the `flag` that picks
 * another address.
 */
export function tcpBindError(subject: string, flag: string, address: TcpAddress, error: unknown): ListenError {
  const inUse = (error as { code?: unknown }).code === "EADDRINUSE";
  const outgoing = inUse ? outgoingPortHint(address.port) : undefined;
  let detail = `${describeListenError(error, address)}; pick another address with ${flag} ADDR`;
  if (outgoing !== undefined) {
    detail = `${outgoing} with ${flag} ADDR (EADDRINUSE)`;
  } else if (inUse) {
    detail = `the address is already in use (EADDRINUSE), such as by another tinylb that may still be draining; stop it, wait until it exits, or pick another address with ${flag} ADDR`;
  }

  return new ListenError(`${subject} listen on ${formatAddress(address)} failed: ${detail}`, { cause: error });
}
