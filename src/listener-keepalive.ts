import { dlopen, FFIType, ptr } from "bun:ffi";

// Linux constants from <sys/socket.h> and <netinet/tcp.h>.
const SOL_SOCKET = 1;
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

/** C libraries to load setsockopt(2) from: glibc, then musl on x64 and arm64. */
const LIBC_NAMES = ["libc.so.6", "libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1"];

type SetSockOpt = (fd: number, level: number, name: number, value: number) => boolean;

let loaded: SetSockOpt | null | undefined;

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
  const setOption = loadSetSockOpt();
  if (setOption === null) {
    return false;
  }
  if (keepaliveMs <= 0) {
    return setOption(fd, SOL_SOCKET, SO_KEEPALIVE, 0);
  }

  // Same rounding as Bun's setKeepAlive: whole seconds, at least 1.
  const idleSeconds = Math.max(1, Math.floor(keepaliveMs / 1000));

  return (
    setOption(fd, SOL_SOCKET, SO_KEEPALIVE, 1) &&
    setOption(fd, IPPROTO_TCP, TCP_KEEPIDLE, idleSeconds) &&
    setOption(fd, IPPROTO_TCP, TCP_KEEPINTVL, PROBE_INTERVAL_SECONDS) &&
    setOption(fd, IPPROTO_TCP, TCP_KEEPCNT, PROBE_COUNT)
  );
}

/** Loads setsockopt(2) through bun:ffi once; returns null when no C library can be opened. */
function loadSetSockOpt(): SetSockOpt | null {
  if (loaded !== undefined) {
    return loaded;
  }

  loaded = null;
  for (const name of LIBC_NAMES) {
    try {
      const libc = dlopen(name, {
        setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
      });
      loaded = (fd, level, option, optionValue) => {
        // A fresh array and pointer per call. With one array's pointer kept across calls, Bun
        // 1.4.4 later passed a stale value (a 10 s idle time was set in place of 37 s).
        const value = new Int32Array([optionValue]);

        return libc.symbols.setsockopt(fd, level, option, ptr(value), 4) === 0;
      };
      break;
    } catch {
      // Not this C library; try the next name.
    }
  }

  return loaded;
}
