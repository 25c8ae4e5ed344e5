import type { ConnectionOptions } from "node:tls";
import type { Backend } from "../backend.ts";
import type { ProbeSettings, ProbeTls } from "./probe.ts";
import { describeFileError } from "../file-errors.ts";
import { encodeLocalProxyHeader } from "../proxy-header.ts";
import { MAX_PEM_FILE_BYTES, MAX_TOKEN_FILE_BYTES, readRegularFile } from "../regular-file.ts";
import { exchange, PLAIN_ON_TLS_HINT } from "./http-exchange.ts";
import { ProbeError } from "./probe-error.ts";

/**
 * Probes a backend with one HTTP/1.1 `GET` over a fresh connection, plain or TLS, and
 * checks the status code. Only the status line is read, then the socket is closed.
 *
 * The request is written by hand over a node:net socket rather than with `fetch`, so that no
 * pooled connection can hide a backend that stopped accepting, and so that an aborted
 * probe closes its own socket, also while its connect is pending.
 *
 * @throws {ProbeError} when a file cannot be read, the connect or TLS handshake fails, the
 *   response is not HTTP, the status is not expected, or `signal` aborts first.
 */
export async function httpProbe(backend: Backend, settings: ProbeSettings, signal: AbortSignal): Promise<void> {
  const tls = settings.kind === "https" ? loadTls(settings.tls) : undefined;
  const token = settings.bearerTokenFile === undefined ? undefined : readToken(settings.bearerTokenFile);
  const request = buildRequest(backend, settings, token);
  signal.throwIfAborted();

  const header = settings.proxyProtocol === undefined ? undefined : encodeLocalProxyHeader(settings.proxyProtocol);
  const status = await exchange(backend, request, { tls, caFile: settings.tls.caFile, header }, signal);
  if (!settings.expectStatus.includes(status)) {
    throw new ProbeError(`GET ${settings.path} returned status ${status}, expected ${settings.expectStatus.join(" or ")}${statusHint(settings, status)}`);
  }
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

function loadTls(settings: ProbeTls): ConnectionOptions {
  const tls: ConnectionOptions = { rejectUnauthorized: settings.insecureSkipVerify !== true };
  if (settings.serverName !== undefined) {
    tls.servername = settings.serverName;
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
