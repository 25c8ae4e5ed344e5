import type { Socket } from "bun";
import type { Backend } from "../backend.ts";
import { encodeLocalProxyHeader, type ProxyProtocolVersion } from "../proxy-header.ts";
import type { ConnectTracker } from "./probe.ts";
import { errorDetail, ProbeError } from "./probe-error.ts";

/**
 * Probes a backend with a TCP (or Unix socket) connect, closing the socket once it opens.
 * With `proxyProtocol`, the probe first writes a PROXY protocol header that carries no client
 * and ends the socket with a FIN, so a backend that requires the header does not log a broken one.
 *
 * NOTE: `Bun.connect` cannot be cancelled. After an abort, a connect still in flight is
 * closed when it completes or fails, which for a target that drops SYNs is after the
 * kernel's retries (about two minutes on Linux defaults).
 *
 * @throws {ProbeError} when the connect fails or `signal` aborts first.
 */
export function tcpProbe(backend: Backend, signal: AbortSignal, track: ConnectTracker, proxyProtocol?: ProxyProtocolVersion): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const settle = (error?: ProbeError): void => {
      if (settled) {
        return;
      }
      settled = true;
      signal.removeEventListener("abort", onAbort);
      if (error === undefined) {
        resolve();
      } else {
        reject(error);
      }
    };
    const onAbort = (): void => settle(new ProbeError("probe aborted"));
    if (signal.aborted) {
      onAbort();

      return;
    }
    signal.addEventListener("abort", onAbort);

    const handlers = {
      open(socket: Socket<undefined>) {
        if (proxyProtocol === undefined) {
          socket.terminate();
        } else {
          // The header is far smaller than a socket's send buffer, so one write takes it whole.
          socket.write(encodeLocalProxyHeader(proxyProtocol));
          socket.end();
        }
        settle();
      },
      data() {},
      error() {
        // The rejected promise of Bun.connect, or open, settles the probe.
      },
      connectError() {
        // The rejected promise of Bun.connect carries the same error.
      },
    };
    const address = backend.address;
    const connecting =
      address.kind === "unix"
        ? Bun.connect({ unix: address.path, socket: handlers })
        : Bun.connect({ hostname: address.host, port: address.port, socket: handlers });
    track(connecting);
    // The health checker words the failure as "tcp connect failed: DETAIL", so the detail stands alone.
    connecting.catch((error: unknown) => settle(new ProbeError(errorDetail(error), { cause: error })));
  });
}
