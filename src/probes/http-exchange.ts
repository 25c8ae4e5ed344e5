import { type ConnectionOptions, connect as connectTls, type TLSSocket } from "node:tls";
import type { Backend } from "../backend.ts";
import { UNTRUSTED_CHAIN_CODES } from "../tls-errors.ts";
import { connectProbeSocket } from "./probe-socket.ts";
import { errorDetail, ProbeError } from "./probe-error.ts";
import { runProbeAttempt } from "./probe-attempt.ts";

/** Bytes of response read while looking for the status line; a longer first line fails the probe. */
const MAX_STATUS_LINE_BYTES = 8192;

/**
 * The hint for a plain http probe that a TLS port rejects. TLS servers close or reset such a
 * connection (openssl s_server, Python's ssl), send a TLS alert record, or respond with 400
 * (nginx, Go's net/http).
 */
export const PLAIN_ON_TLS_HINT = "; if the port serves TLS, as a kube-apiserver's does, set probe.kind to https (--probe https)";

/** Options for opening a probe's connection: TLS or plain, and the PROXY protocol header that goes first. */
export interface ExchangeOptions {
  /** TLS options of node:tls, or undefined for plain HTTP. */
  tls: ConnectionOptions | undefined;
  /** CA file that `tls` trusts, named in handshake errors. It is undefined when `tls` uses the runtime's default CA list. */
  caFile: string | undefined;
  /** Bytes written before the TLS handshake or the request. */
  header: Uint8Array | undefined;
}

/** How far a probe's connection got, which decides how a failure is worded. */
type Phase = "connect" | "handshake" | "exchange";

/**
 * Connects, sends `request` and resolves with the response's status code. With a header
 * and TLS, the socket connects in plain text, writes the header, and only then starts TLS
 * over it, so the header comes before the ClientHello, as a PROXY protocol listener in front
 * of TLS expects. Without a header, TLS starts over the connected socket the same way.
 *
 * Settling closes the socket, also on an abort of `signal` while the connect is pending.
 *
 * @throws {ProbeError} when the connect or TLS handshake fails, the backend closes or resets
 *   the connection first, the response is not HTTP, or `signal` aborts first.
 */
export function exchange(backend: Backend, request: string, options: ExchangeOptions, signal: AbortSignal): Promise<number> {
  const { tls, caFile, header } = options;

  return runProbeAttempt<number>(signal, (attempt) => {
    const plain = connectProbeSocket(backend.address);
    let secure: TLSSocket | undefined;
    let phase: Phase = "connect";
    let head = "";

    const fail = (error: Error): void => attempt.settle(describeFailure(error, phase, backend, options));
    const onData = (chunk: Buffer): void => {
      head += chunk.toString("latin1");
      if (tls === undefined && looksLikeTls(head)) {
        attempt.settle(new ProbeError(`the response is a TLS record, not HTTP${PLAIN_ON_TLS_HINT}`));

        return;
      }
      const lineEnd = head.indexOf("\r\n");
      if (lineEnd >= 0) {
        attempt.settle(parseStatusLine(head.slice(0, lineEnd)));
      } else if (head.length > MAX_STATUS_LINE_BYTES) {
        attempt.settle(new ProbeError(`the response has no status line in its first ${MAX_STATUS_LINE_BYTES} bytes`));
      }
    };
    // An error comes before its close, so this settles only a close without an error.
    const onClose = (): void => attempt.settle(new ProbeError(`the backend closed the connection before sending a status line${tls === undefined ? PLAIN_ON_TLS_HINT : ""}`));

    const startTls = (tlsOptions: ConnectionOptions): void => {
      phase = "handshake";
      secure = connectTls({ ...tlsOptions, socket: plain, host: hostOf(backend) });
      secure.on("secureConnect", () => {
        phase = "exchange";
        secure!.write(request);
      });
      secure.on("data", onData);
      secure.on("error", fail);
      secure.on("close", onClose);
    };

    plain.on("error", fail);
    plain.on("close", onClose);
    plain.on("connect", () => {
      if (tls === undefined) {
        phase = "exchange";
        plain.on("data", onData);
        if (header !== undefined) {
          plain.write(header);
        }
        plain.write(request);
      } else if (header === undefined) {
        startTls(tls);
      } else {
        // TLS starts only once the header is written, so that no handshake byte goes first.
        plain.write(header, () => {
          if (!attempt.settled) {
            startTls(tls);
          }
        });
      }
    });

    return () => {
      secure?.destroy();
      plain.destroy();
    };
  });
}

/** Words a failed probe connection by how far it got, with a hint where the setting that fixes it is known. */
function describeFailure(error: Error, phase: Phase, backend: Backend, options: ExchangeOptions): ProbeError {
  if (phase === "connect") {
    return new ProbeError(`connect failed: ${errorDetail(error)}`, { cause: error });
  }
  if (phase === "handshake") {
    const checkedName = options.tls?.servername ?? hostOf(backend);

    return new ProbeError(`TLS handshake failed: ${describeHandshakeError(error, checkedName, options.caFile)}`, { cause: error });
  }
  const reset = (error as { code?: unknown }).code === "ECONNRESET";

  return new ProbeError(`connection failed: ${errorDetail(error)}${options.tls === undefined && reset ? PLAIN_ON_TLS_HINT : ""}${clientCertificateHint(error)}`, { cause: error });
}

/**
 * Returns the fix for a backend that rejected the handshake for want of a client certificate.
 * In TLS 1.3 its alert arrives after the client finished the handshake, so it can end any phase.
 */
function clientCertificateHint(error: Error): string {
  const text = `${String((error as { code?: unknown }).code ?? "")} ${error.message}`;

  return text.includes("CERTIFICATE_REQUIRED") ? "; the backend requires a client certificate, so set probe.tls.cert and probe.tls.key" : "";
}

/**
 * Describes a failed TLS handshake. A certificate that does not name the host checked, or that
 * no trusted CA signed, gets the setting that fixes it, because the runtime's messages suggest no fix.
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

  return `${errorDetail(error)}${clientCertificateHint(error)}`;
}

/** Returns the host of a TCP backend's target, which TLS checks the certificate against without a server name. */
function hostOf(backend: Backend): string | undefined {
  return backend.address.kind === "tcp" ? backend.address.host : undefined;
}

/** Returns true when `head` starts as a TLS record does: an alert (21) or a handshake (22), version 3.x. */
function looksLikeTls(head: string): boolean {
  return head.length >= 2 && (head.charCodeAt(0) === 21 || head.charCodeAt(0) === 22) && head.charCodeAt(1) === 3;
}

function parseStatusLine(line: string): number | ProbeError {
  const match = /^HTTP\/\d(?:\.\d)? (\d{3})(?: |$)/.exec(line);
  if (match === null) {
    return new ProbeError(`the response is not HTTP: status line ${JSON.stringify(line.slice(0, 80))}`);
  }

  return Number(match[1]);
}
