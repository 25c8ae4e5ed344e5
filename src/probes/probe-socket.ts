import { connect, type Socket } from "node:net";
import type { Address } from "../address.ts";

/**
 * Starts the connect of a probe's socket to `address`, TCP or Unix.
 *
 * Probes use node:net rather than `Bun.connect`, because in Bun 1.4.4 only node:net can close
 * a socket whose connect is still pending. Its `destroy()` closes the descriptor at once, so
 * no socket stays in SYN_SENT after a probe gives up on a target that drops SYNs. A
 * `Bun.connect` runs until the kernel gives up, about 127 s with Linux's default of 6 SYN
 * retries. node:net reports the same error codes for a failed connect (ECONNREFUSED, ENOENT).
 *
 * NOTE: a destroy cannot stop a host name lookup that is still running. Checked in Bun 1.4.4
 * with a resolver that drops queries: the lookup keeps one socket until the resolver gives up,
 * Bun shares it among the lookups of the same name, and no connect starts after the destroy.
 */
export function connectProbeSocket(address: Address): Socket {
  return address.kind === "unix" ? connect({ path: address.path }) : connect({ host: address.host, port: address.port });
}
