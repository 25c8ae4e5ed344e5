import type { Socket, TLSOptions } from "bun";
import type { Backend } from "../backend.ts";
import type { ConnectTracker, ProbeSettings, ProbeTls } from "./probe.ts";
import { describeFileError } from "../file-errors.ts";
import { encodeLocalProxyHeader } from "../proxy-header.ts";
import { MAX_PEM_FILE_BYTES, MAX_TOKEN_FILE_BYTES, readRegularFile } from "../regular-file.ts";
import { UNTRUSTED_CHAIN_CODES } from "../tls-errors.ts";
import { errorDetail, ProbeError } from "./probe-error.ts";

/** Bytes of response read while looking for the status line; a longer first line fails the probe. */
const MAX_STATUS_LINE_BYTES = 8192;

/**
 * Probes a backend with one HTTP/1.1 `GET` over a fresh connection, plain or TLS, and
 * checks the status code. Only the status line is read, then the socket is closed.
 *
 * The request is written by hand over `Bun.connect` rather than with `fetch`, so that no
 * pooled connection can hide a backend that stopped accepting, and so that an aborted
 * probe closes its own socket.
 *
 * @throws {ProbeError} when a file cannot be read, the connect or TLS handshake fails, the
 *   response is not HTTP, the status is not expected, or `signal` aborts first.
 */
export async function httpProbe(backend: Backend, settings: ProbeSettings, signal: AbortSignal, track: ConnectTracker): Promise<void> {
  const tls = settings.kind === "https" ? loadTls(settings.tls) : undefined;
  const token = settings.bearerTokenFile === undefined ? undefined : readToken(settings.bearerTokenFile);
  const request = buildRequest(backend, settings, token);
  signal.throwIfAborted();

  const header = settings.proxyProtocol === undefined ? undefined : encodeLocalProxyHeader(settings.proxyProtocol);
  const status = await exchange(backend, request, { tls, caFile: settings.tls.caFile, insecure: settings.tls.insecureSkipVerify === true, header }, signal, track);
  if (!settings.expectStatus.includes(status)) {
    throw new ProbeError(`GET ${settings.path} returned status ${status}, expected ${settings.expectStatus.join(" or ")}${statusHint(settings, status)}`);
  }
}

/**
 * The hint for a plain http probe that a TLS port rejects. TLS servers close or reset such a
 * connection (openssl s_server, Python's ssl), send a TLS alert record, or respond with 400
 * (nginx, Go's net/http).
 */
const PLAIN_ON_TLS_HINT = "; if the port serves TLS, as a kube-apiserver's does, set probe.kind to https (--probe https)";

/** Returns true when `head` starts as a TLS record does: an alert (21) or a handshake (22), version 3.x. */
function looksLikeTls(head: string): boolean {
  return head.length >= 2 && (head.charCodeAt(0) === 21 || head.charCodeAt(0) === 22) && head.charCodeAt(1) === 3;
}

/**
 * Returns a hint for an unexpected status, or "". Servers such as nginx and Go's net/http
 * (the kube-apiserver's) respond to a plain HTTP request on a TLS port with 400.
 */
function statusHint(settings: ProbeSettings, status: number): string {
  if (settings.kind !== "http" || status !== 400) {
    return "";
  }

  return PLAIN_ON_TLS_HINT;
}

/** Options for opening a probe's connection: TLS or plain, and the PROXY protocol header that goes first. */
interface ExchangeOptions {
  tls: TLSOptions | undefined;
  /** CA file that `tls` trusts, named in handshake errors. It is undefined when `tls` uses the runtime's default CA list. */
  caFile: string | undefined;
  /** Accept a certificate that fails verification. */
  insecure: boolean;
  /** Bytes written before the TLS handshake or the request. */
  header: Uint8Array | undefined;
}

/**
 * Connects, sends `request` and resolves with the response's status code. With a header
 * and TLS, the socket connects in plain text, writes the header, and only then starts TLS
 * (Bun's `upgradeTLS`), so the header comes before the ClientHello, as a PROXY protocol
 * listener in front of TLS expects.
 */
function exchange(backend: Backend, request: string, options: ExchangeOptions, signal: AbortSignal, track: ConnectTracker): Promise<number> {
  const { tls, caFile, insecure, header } = options;

  return new Promise<number>((resolve, reject) => {
    let socket: Socket<undefined> | undefined;
    let settled = false;
    let head = "";
    let unsent = request;

    const settle = (result: number | ProbeError): void => {
      if (settled) {
        return;
      }
      settled = true;
      signal.removeEventListener("abort", onAbort);
      socket?.terminate();
      if (typeof result === "number") {
        resolve(result);
      } else {
        reject(result);
      }
    };
    const onAbort = (): void => settle(new ProbeError("probe aborted"));
    if (signal.aborted) {
      onAbort();

      return;
    }
    signal.addEventListener("abort", onAbort);

    const send = (target: Socket<undefined>): void => {
      const written = target.write(unsent);
      unsent = unsent.slice(Math.max(written, 0));
    };
    const sendHeader = (target: Socket<undefined>): boolean => {
      // The header is far smaller than a socket's send buffer, so a fresh socket takes it whole.
      if (header !== undefined && target.write(header) !== header.byteLength) {
        settle(new ProbeError("write of the PROXY protocol header failed"));

        return false;
      }

      return true;
    };
    const handlers = {
      open(opened: Socket<undefined>) {
        socket = opened;
        if (settled) {
          opened.terminate();
        } else if (tls === undefined && sendHeader(opened)) {
          send(opened);
        }
      },
      handshake(opened: Socket<undefined>, authorized: boolean, error: Error) {
        if (!authorized && !insecure) {
          settle(new ProbeError(`TLS handshake failed: ${describeHandshakeError(error, tls?.serverName ?? hostOf(backend), caFile)}`, { cause: error }));

          return;
        }
        send(opened);
      },
      drain(opened: Socket<undefined>) {
        if (unsent !== "") {
          send(opened);
        }
      },
      data(_socket: Socket<undefined>, chunk: Buffer) {
        head += chunk.toString("latin1");
        if (tls === undefined && looksLikeTls(head)) {
          settle(new ProbeError(`the response is a TLS record, not HTTP${PLAIN_ON_TLS_HINT}`));

          return;
        }
        const lineEnd = head.indexOf("\r\n");
        if (lineEnd >= 0) {
          settle(parseStatusLine(head.slice(0, lineEnd)));
        } else if (head.length > MAX_STATUS_LINE_BYTES) {
          settle(new ProbeError(`the response has no status line in its first ${MAX_STATUS_LINE_BYTES} bytes`));
        }
      },
      error(_socket: Socket<undefined>, error: Error) {
        const reset = (error as { code?: unknown }).code === "ECONNRESET";
        settle(new ProbeError(`connection failed: ${errorDetail(error)}${tls === undefined && reset ? PLAIN_ON_TLS_HINT : ""}`, { cause: error }));
      },
      close() {
        settle(new ProbeError(`the backend closed the connection before sending a status line${tls === undefined ? PLAIN_ON_TLS_HINT : ""}`));
      },
      connectError() {
        // The rejected promise of Bun.connect carries the same error.
      },
    };

    // With a header, TLS starts once the header is written; the plain socket's own events are not needed then.
    const plainHandlers = {
      open(plain: Socket<undefined>) {
        socket = plain;
        if (settled) {
          plain.terminate();
        } else if (sendHeader(plain)) {
          socket = plain.upgradeTLS({ tls: tls!, socket: handlers })[1];
        }
      },
      data() {},
      error() {},
      close() {},
      connectError() {},
    };
    const upgrade = header !== undefined && tls !== undefined;
    const connectTls = upgrade ? undefined : tls;
    const socketHandlers = upgrade ? plainHandlers : handlers;
    const address = backend.address;
    const connecting =
      address.kind === "unix"
        ? Bun.connect({ unix: address.path, tls: connectTls, socket: socketHandlers })
        : Bun.connect({ hostname: address.host, port: address.port, tls: connectTls, socket: socketHandlers });
    track(connecting);
    connecting.then(
      (connected) => {
        // After an upgrade, `socket` is the TLS socket, which closes the plain one with it.
        socket ??= connected;
        if (settled) {
          connected.terminate();
        }
      },
      (error: unknown) => settle(new ProbeError(`connect failed: ${errorDetail(error)}`, { cause: error })),
    );
  });
}

/**
 * Describes a failed TLS handshake. A certificate that does not name the host checked, or that
 * no trusted CA signed, gets the setting that fixes it, because Bun's messages suggest no fix.
 */
function describeHandshakeError(error: Error, checkedName: string | undefined, caFile: string | undefined): string {
  const code = (error as { code?: unknown }).code;
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    const name = checkedName === undefined ? "the host" : `"${checkedName}"`;

    return `the certificate does not name ${name}; set probe.tls.serverName (or --probe-server-name) to a name in the certificate (${code})`;
  }
  if (typeof code === "string" && UNTRUSTED_CHAIN_CODES.has(code)) {
    const trusted = caFile === undefined ? "the runtime's default CA list" : `the CA file ${caFile}`;

    return `${errorDetail(error)}: ${trusted} does not include the CA that signed the backend's certificate; set probe.tls.ca (or --probe-ca) to that CA`;
  }

  return errorDetail(error);
}

/** Returns the host of a TCP backend's target, which TLS checks the certificate against without a server name. */
function hostOf(backend: Backend): string | undefined {
  return backend.address.kind === "tcp" ? backend.address.host : undefined;
}

function parseStatusLine(line: string): number | ProbeError {
  const match = /^HTTP\/\d(?:\.\d)? (\d{3})(?: |$)/.exec(line);
  if (match === null) {
    return new ProbeError(`the response is not HTTP: status line ${JSON.stringify(line.slice(0, 80))}`);
  }

  return Number(match[1]);
}

function buildRequest(backend: Backend, settings: ProbeSettings, token: string | undefined): string {
  const address = backend.address;
  const host =
    settings.tls.serverName ??
    (address.kind === "unix" ? "localhost" : address.host.includes(":") ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`);
  const lines = [`GET ${settings.path} HTTP/1.1`, `Host: ${host}`, "User-Agent: tinylb-probe", "Accept: */*", "Connection: close"];
  if (token !== undefined) {
    lines.push(`Authorization: Bearer ${token}`);
  }

  return lines.join("\r\n") + "\r\n\r\n";
}

function loadTls(settings: ProbeTls): TLSOptions {
  const tls: TLSOptions = { rejectUnauthorized: settings.insecureSkipVerify !== true };
  if (settings.serverName !== undefined) {
    tls.serverName = settings.serverName;
  }
  if (settings.caFile !== undefined) {
    tls.ca = readPem("CA", settings.caFile);
  }
  if (settings.certFile !== undefined) {
    tls.cert = readPem("client certificate", settings.certFile);
  }
  if (settings.keyFile !== undefined) {
    tls.key = readPem("client key", settings.keyFile);
  }

  return tls;
}

function readPem(what: string, path: string): string {
  try {
    return readRegularFile(path, MAX_PEM_FILE_BYTES).toString("utf8");
  } catch (error) {
    throw new ProbeError(`read ${what} file ${path} failed: ${describeFileError(error)}`, { cause: error });
  }
}

/** Reads a bearer token file. Error messages name the file, never its content. */
function readToken(path: string): string {
  let token: string;
  try {
    token = readRegularFile(path, MAX_TOKEN_FILE_BYTES).toString("utf8").trim();
  } catch (error) {
    throw new ProbeError(`read bearer token file ${path} failed: ${describeFileError(error)}`, { cause: error });
  }
  if (token === "" || /[\r\n]/.test(token)) {
    throw new ProbeError(`bearer token file ${path} is empty or contains more than one line`);
  }

  return token;
}
