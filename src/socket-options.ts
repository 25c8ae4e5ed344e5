import { dlopen, FFIType, ptr } from "bun:ffi";

/** `SOL_SOCKET` from Linux's <sys/socket.h>, the level of socket-wide options. */
export const SOL_SOCKET = 1;

/** C libraries to load setsockopt(2) from: glibc, then musl on x64 and arm64. */
const LIBC_NAMES = ["libc.so.6", "libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1"];

type SetSockOpt = (fd: number, level: number, name: number, value: number) => boolean;

let loaded: SetSockOpt | null | undefined;

/**
 * Sets an integer socket option with setsockopt(2), for options that Bun offers no API for,
 * such as those of a listening socket. Returns false when the call fails or setsockopt(2)
 * cannot be loaded, such as in a binary run without a C library; callers fall back then.
 */
export function setSocketOption(fd: number, level: number, name: number, value: number): boolean {
  const setOption = loadSetSockOpt();

  return setOption !== null && setOption(fd, level, name, value);
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
