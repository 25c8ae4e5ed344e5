import { describeSocketError } from "../socket-errors.ts";
import { UNTRUSTED_CHAIN_CODES } from "../tls-errors.ts";

/**
 * Describes a request to an etcd endpoint that failed before a response, with what to check:
 * an untrusted certificate, or a socket error in plain words. Bun's own fetch messages name
 * neither the endpoint nor a fix.
 */
export function describeEtcdRequestError(error: unknown, endpoint: string): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === "string" && UNTRUSTED_CHAIN_CODES.has(code)) {
    const message = error instanceof Error ? error.message : String(error);

    return `the certificate of ${endpoint} is not trusted: ${message}; set etcd.caFile to the CA that signed the etcd members' certificates (${code})`;
  }
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    return `the certificate of ${endpoint} does not name its host; use an endpoint address that the certificate names (${code})`;
  }

  return `${describeSocketError(error)}; check that etcd serves clients at ${endpoint} (etcd.endpoints)`;
}

/**
 * An etcd response that does not continue the history the kept set came from: the store
 * revision went below the revision the set reflects, or the cluster id changed. Both happen
 * when etcd is replaced by a new cluster or restored from a snapshot without
 * `--bump-revision`, and the caller must read the whole prefix again.
 */
export class EtcdHistoryChangedError extends Error {
  override name = "EtcdHistoryChangedError";
}
