/** Record types the DNS provider queries. */
export type DnsRecordType = "A" | "AAAA" | "SRV";

/** Error codes that mean "this name has no records of that type", not a failed query. */
const NO_RECORDS = new Set(["ENODATA", "ENOTFOUND"]);

/** Returns true when a resolver error means the name has no records of the type asked for. */
export function isNoRecords(error: unknown): boolean {
  return NO_RECORDS.has(errorCode(error) ?? "");
}

/**
 * A failed DNS query, worded for an operator: what went wrong with which record type of
 * which name, then the resolver's error code in brackets. The resolver's own error is kept
 * in `resolverError` rather than as the cause, because loggers print causes and its
 * message (for example "queryAaaa EREFUSED api.internal") only repeats the code.
 */
export class DnsQueryError extends Error {
  readonly code: string | undefined;
  readonly resolverError: unknown;

  constructor(type: DnsRecordType, name: string, resolverError: unknown) {
    const code = errorCode(resolverError);
    super(`${describeFailure(type, name, code)}${code === undefined ? "" : ` (${code})`}`);
    this.name = "DnsQueryError";
    this.code = code;
    this.resolverError = resolverError;
  }
}

function describeFailure(type: DnsRecordType, name: string, code: string | undefined): string {
  const query = `the ${type} query for ${name}`;
  switch (code) {
    case "EREFUSED":
      return `the DNS server refused ${query}`;
    case "ETIMEOUT":
      return `${query} timed out`;
    case "ESERVFAIL":
      return `the DNS server failed to answer ${query} (SERVFAIL)`;
    case "ECONNREFUSED":
      return `${query} failed: no DNS server listens at the resolver address`;
    case "EBADRESP":
    case "EFORMERR":
      return `the DNS server sent an invalid answer to ${query}`;
    case "ENOTIMP":
      return `the DNS server does not support ${query}`;
    case "EBADNAME":
      return `${query} failed: ${name} is not a valid DNS name`;
    case "ECANCELLED":
      return `${query} was cancelled`;
    default:
      return `${query} failed`;
  }
}

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;

  return typeof code === "string" ? code : undefined;
}

/** Codes of a query that no DNS server answered: nothing listens there, or nothing replied. */
const UNANSWERED = /\((ECONNREFUSED|ETIMEOUT)\)/;

/**
 * Returns what to check when a lookup failed because no DNS server answered at all, or
 * undefined for other failures, whose error already names the DNS server's reply.
 */
export function unansweredLookupFix(error: unknown): string | undefined {
  const text = error instanceof Error ? error.message : String(error);

  return UNANSWERED.test(text) ? "check that a DNS server listens at the resolver address, and set it with --dns-resolver or dns.resolver" : undefined;
}
