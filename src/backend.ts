import { type Address, AddressError, formatAddress, parseTarget } from "./address.ts";

/**
 * One member of a backend set: a stable id chosen by its provider and the target it dials.
 *
 * Connections are grouped by `target`, the canonical address string, so a backend
 * whose id keeps its name but points elsewhere loses its old connections.
 */
export interface Backend {
  /** Stable key chosen by the provider, such as `api-1`. */
  readonly id: string;
  /** Canonical address string: `host:port`, `[ipv6]:port` or `unix:/path`. */
  readonly target: string;
  /** The parsed target. */
  readonly address: Address;
}

/** Longest backend id accepted; ids appear in logs, metrics labels and URLs. */
export const MAX_ID_LENGTH = 128;

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@-]*$/;

/** A backend id or target that is not valid, with the value and what would be valid. */
export class BackendError extends Error {
  override name = "BackendError";
}

/**
 * Creates a backend from an id and a target string.
 *
 * @throws {BackendError} when the id is empty, too long or has characters outside
 *   letters, digits and `._:@-`, or when the target is not valid (see `parseTarget`).
 */
export function createBackend(id: string, target: string): Backend {
  validateId(id);

  let address: Address;
  try {
    address = parseTarget(target);
  } catch (error) {
    if (error instanceof AddressError) {
      throw new BackendError(`invalid target for backend "${id}": ${error.message}`, { cause: error });
    }
    throw error;
  }

  return { id, target: formatAddress(address), address };
}

/**
 * Checks a backend id.
 *
 * @throws {BackendError} when the id is not valid.
 */
export function validateId(id: string): void {
  if (id.length === 0 || id.length > MAX_ID_LENGTH || !ID_PATTERN.test(id)) {
    throw new BackendError(
      `invalid backend id "${id.length > MAX_ID_LENGTH ? `${id.slice(0, MAX_ID_LENGTH)}..." (${id.length} characters)` : `${id}"`}: use 1 to ${MAX_ID_LENGTH} ASCII letters, digits or ._:@- starting with a letter or digit`,
    );
  }
}

/** Formats a backend for logs and messages as `id (target)`. */
export function describeBackend(backend: Backend): string {
  return `"${backend.id}" (${backend.target})`;
}
