import type { Backend } from "../backend.ts";
import { encodeLocalProxyHeader, type ProxyProtocolVersion } from "../proxy-header.ts";
import { connectProbeSocket } from "./probe-socket.ts";
import { errorDetail, ProbeError } from "./probe-error.ts";

/**
 * Probes a backend with a TCP (or Unix socket) connect, closing the socket once it opens.
 * With `proxyProtocol`, the probe first writes a PROXY protocol header that carries no client
 * and ends the socket with a FIN, so a backend that requires the header does not log a broken one.
 *
 * An abort closes the socket at once, also while the connect is still pending, so a target
 * that drops SYNs keeps no socket of a timed-out probe in SYN_SENT.
 *
 * @throws {ProbeError} when the connect fails or `signal` aborts first.
 */
export function tcpProbe(backend: Backend, signal: AbortSignal, proxyProtocol?: ProxyProtocolVersion): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) {
      reject(new ProbeError("probe aborted"));

      return;
    }
    const socket = connectProbeSocket(backend.address);
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
        socket.destroy();
        reject(error);
      }
    };
    const onAbort = (): void => settle(new ProbeError("probe aborted"));
    signal.addEventListener("abort", onAbort);

    socket.on("connect", () => {
      if (proxyProtocol === undefined) {
        socket.destroy();
      } else {
        // The FIN follows the header, and the socket closes once both are written. Bytes that
        // the backend sends are read and dropped, because unread bytes make a close send a reset.
        socket.resume();
        socket.write(encodeLocalProxyHeader(proxyProtocol));
        socket.end(() => socket.destroy());
      }
      settle();
    });
    // The health checker words the failure as "tcp connect failed: DETAIL", so the detail stands alone.
    socket.on("error", (error) => settle(new ProbeError(errorDetail(error), { cause: error })));
  });
}
