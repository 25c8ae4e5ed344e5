/**
 * Plain words for the errno codes a connect or a socket read or write fails with, so
 * that dial, probe and provider errors read the same way. Bun 1.4.4 words a failed
 * connect as "Failed to connect" whatever the cause, so the code carries the reason.
 */
const SOCKET_ERROR_WORDS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ETIMEDOUT: "connection timed out",
  EHOSTUNREACH: "no route to the host",
  ENETUNREACH: "the network is unreachable",
  ECONNRESET: "connection reset by the peer",
  ECONNABORTED: "connection aborted",
  EPIPE: "the peer closed the connection while data was being sent",
  ENOENT: "no socket exists at that path",
  EACCES: "permission denied",
  EPERM: "the operation is not permitted (a firewall rule may block it)",
  EADDRNOTAVAIL: "no local address is free for the connection",
  EMFILE: "too many open files",
};

/**
 * Plain words for failed host name lookups, which Bun words as `getaddrinfo ENOTFOUND NAME`,
 * keeping the host name and dropping the name of the C function.
 */
const LOOKUP_ERROR_WORDS: Record<string, (host: string) => string> = {
  ENOTFOUND: (host) => `host name ${host} not found`,
  EAI_AGAIN: (host) => `the lookup of host name ${host} failed temporarily`,
};

/** Returns the host name of a failed lookup, quoted, from the error's `hostname` or its message. */
function lookedUpHost(error: unknown, message: string): string {
  const hostname = (error as { hostname?: unknown }).hostname;
  if (typeof hostname === "string" && hostname !== "") {
    return JSON.stringify(hostname);
  }
  const fromMessage = /^getaddrinfo \S+ (\S+)/.exec(message)?.[1];

  return fromMessage === undefined ? "(unknown)" : JSON.stringify(fromMessage);
}

/**
 * Developer hints that Bun 1.4.4's fetch appends to its error messages, such as "For more
 * information, pass `verbose: true` in the second argument to fetch()". They name no fix an
 * operator can apply.
 */
const RUNTIME_HINTS = [/\.? For more information, pass `verbose: true` in the second argument to fetch\(\)\.?/g, / Is the computer able to access the url\?/g];

/** Returns `message` without Bun's developer hints. */
export function withoutRuntimeHints(message: string): string {
  return RUNTIME_HINTS.reduce((text, hint) => text.replace(hint, ""), message);
}

/**
 * Describes a socket error as plain words followed by its errno code in brackets, such as
 * `connection refused (ECONNREFUSED)`. An error with a code this module does not know
 * keeps its own message, with the code appended when the message lacks it.
 */
export function describeSocketError(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code !== "string") {
    return withoutRuntimeHints(error instanceof Error ? error.message : String(error));
  }
  const words = SOCKET_ERROR_WORDS[code];
  if (words !== undefined) {
    return `${words} (${code})`;
  }
  const message = withoutRuntimeHints(error instanceof Error ? error.message : String(error));
  const lookupWords = LOOKUP_ERROR_WORDS[code];
  if (lookupWords !== undefined) {
    return `${lookupWords(lookedUpHost(error, message))} (${code})`;
  }

  return message.includes(code) ? message : `${message} (${code})`;
}
