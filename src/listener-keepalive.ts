import { setSocketOption, SOL_SOCKET } from "./socket-options.ts";

// Linux constants from <sys/socket.h> and <netinet/tcp.h>.
const SO_KEEPALIVE = 9;
const IPPROTO_TCP = 6;
const TCP_KEEPIDLE = 4;
const TCP_KEEPINTVL = 5;
const TCP_KEEPCNT = 6;

/**
 * The probe interval in seconds and the probe count that Bun 1.4.4's `setKeepAlive(true, ms)`
 * sets (its type declarations list them), so that a listener's accepted sockets behave the
 * same as sockets configured one by one.
 */
const PROBE_INTERVAL_SECONDS = 1;
const PROBE_COUNT = 10;

/**
 * Sets TCP keepalive on a listening socket, so that Linux copies it to every socket the
 * listener accepts from then on. A socket configured with Bun's `setKeepAlive` costs four
 * setsockopt(2) calls per accepted client, and this costs none.
 *
 * `keepaliveMs` 0 turns keepalive off for clients accepted from then on. Clients already
 * accepted keep their settings. Returns false when a call fails or setsockopt(2) cannot be
 * loaded, such as in a binary run without a C library. The caller then sets keepalive on
 * each accepted socket instead.
 *
 * NOTE: a client whose handshake completed before the call, and which waits in the accept
 * queue, keeps the listener's previous settings.
 */
export function setListenerKeepAlive(fd: number, keepaliveMs: number): boolean {
  const setOption = (level: number, name: number, value: number): boolean => setSocketOption(fd, level, name, value);
  if (keepaliveMs <= 0) {
    return setOption(SOL_SOCKET, SO_KEEPALIVE, 0);
  }

  // Same rounding as Bun's setKeepAlive: whole seconds, at least 1.
  const idleSeconds = Math.max(1, Math.floor(keepaliveMs / 1000));

  return (
    setOption(SOL_SOCKET, SO_KEEPALIVE, 1) &&
    setOption(IPPROTO_TCP, TCP_KEEPIDLE, idleSeconds) &&
    setOption(IPPROTO_TCP, TCP_KEEPINTVL, PROBE_INTERVAL_SECONDS) &&
    setOption(IPPROTO_TCP, TCP_KEEPCNT, PROBE_COUNT)
  );
}
