import type { Address } from "../../src/address.ts";

/**
 * Sends `request` as raw bytes to an HTTP server on `address` and resolves with everything the
 * server sent back once it closed the connection. fetch always adds a Host header and hides
 * a body sent after a HEAD response, so tests of such requests use this instead.
 */
export async function rawHttpExchange(address: Address, request: string, timeoutMs = 10_000): Promise<string> {
  let received = "";
  const { promise: closed, resolve } = Promise.withResolvers<void>();
  const handler = {
    open(socket: { write(data: string): number }) {
      socket.write(request);
    },
    data(_socket: unknown, chunk: Buffer) {
      received += chunk.toString("latin1");
    },
    close() {
      resolve();
    },
  };
  const socket = address.kind === "unix" ? await Bun.connect({ unix: address.path, socket: handler }) : await Bun.connect({ hostname: address.host, port: address.port, socket: handler });
  const timer = setTimeout(() => socket.end(), timeoutMs);
  await closed;
  clearTimeout(timer);

  return received;
}

/** Returns the status code of a raw HTTP response, or 0 when it has no status line. */
export function rawStatus(response: string): number {
  return Number(/^HTTP\/1\.[01] (\d{3}) /.exec(response)?.[1] ?? 0);
}

/** Returns the body of a raw HTTP response: what follows the first blank line. */
export function rawBody(response: string): string {
  const start = response.indexOf("\r\n\r\n");

  return start < 0 ? "" : response.slice(start + 4);
}
