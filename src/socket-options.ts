import { ptr } from "bun:ffi";
import { loadLibc } from "./libc.ts";

/** `SOL_SOCKET` from Linux's <sys/socket.h>, the level of socket-wide options. */
export const SOL_SOCKET = 1;

/**
 * Sets an integer socket option with setsockopt(2), for options that Bun offers no API for,
 * such as those of a listening socket. Returns false when the call fails or setsockopt(2)
 * cannot be loaded, such as in a binary run without a C library; callers fall back then.
 */
export function setSocketOption(fd: number, level: number, name: number, value: number): boolean {
  const libc = loadLibc();
  if (libc === null) {
    return false;
  }

  // A fresh array and pointer per call. With one array's pointer kept across calls, Bun
  // 1.4.4 later passed a stale value (a 10 s idle time was set in place of 37 s).
  const optionValue = new Int32Array([value]);

  return libc.setsockopt(fd, level, name, ptr(optionValue), 4) === 0;
}
