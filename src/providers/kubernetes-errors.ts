import { describeSocketError, withoutRuntimeHints } from "../socket-errors.ts";
import { UNTRUSTED_CHAIN_CODES } from "../tls-errors.ts";

/**
 * Returns what to check for an HTTP error status of the API server, or undefined. `credentials`
 * describes the credentials sent (see describeCredentials), which a 401 or 403 names.
 */
function statusHint(status: number, credentials: string): string | undefined {
  switch (status) {
    case 401:
      return `the API server rejected ${credentials}; replace them with credentials that are valid for this cluster`;
    case 403:
      return `grant the user of ${credentials} list and watch on endpointslices (discovery.k8s.io) in the namespace, or use a token or kubeconfig user that has them`;
    case 404:
      return "check the namespace and that the API server serves discovery.k8s.io/v1";
    default:
      return undefined;
  }
}

/**
 * Describes an HTTP error response of the API server: the status code and text, the
 * server's own reason and message when they add something, and what to check.
 */
export function describeHttpStatus(status: number, statusText: string, credentials: string, reason?: string, message?: string): string {
  const parts = [reason, message].filter((part): part is string => part !== undefined && part !== "" && part !== statusText);
  const detail = [...new Set(parts)].join(": ");
  const hint = statusHint(status, credentials);

  return `HTTP ${status}${statusText === "" ? "" : ` ${statusText}`}${detail === "" ? "" : ` (${detail})`}${hint === undefined ? "" : `: ${hint}`}`;
}

/**
 * Describes a request to the API server that failed before a response: a certificate the
 * kubeconfig does not trust, or a socket error. Bun 1.4.4 appends a hint about its
 * `verbose` option to some fetch errors, which is meant for developers and is left out.
 */
export function describeRequestError(error: unknown, tlsServerName: string): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    return `the API server certificate does not match tlsServerName "${tlsServerName}"; set kubernetes.tlsServerName to a name in the certificate (${code})`;
  }
  if (typeof code === "string" && UNTRUSTED_CHAIN_CODES.has(code)) {
    return `the API server certificate is not signed by the CA of the kubeconfig cluster; check its certificate-authority (${code})`;
  }
  if (code === "CERT_HAS_EXPIRED") {
    return `the API server certificate has expired (${code})`;
  }
  if (typeof code === "string" && /^E[A-Z]+$/.test(code)) {
    return describeSocketError(error);
  }

  return withoutRuntimeHints(error instanceof Error ? error.message : String(error));
}
