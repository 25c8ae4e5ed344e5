import type { Backend } from "../backend.ts";
import { encodeLocalProxyHeader, type ProxyProtocolVersion } from "../proxy-header.ts";
import { connectProbeSocket } from "./probe-socket.ts";
import { errorDetail, ProbeError } from "./probe-error.ts";
import { runProbeAttempt } from "./probe-attempt.ts";

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
  return runProbeAttempt<void>(signal, (attempt) => {
    const socket = connectProbeSocket(backend.address);
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
      attempt.settle();
    });
    // The health checker words the failure as "tcp connect failed: DETAIL", so the detail stands alone.
    socket.on("error", (error) => attempt.settle(new ProbeError(errorDetail(error), { cause: error })));

    // A probe that passed has closed its socket already, or closes it after the header and the FIN.
    return (result) => {
      if (result instanceof ProbeError) {
        socket.destroy();
      }
    };
  });
}
