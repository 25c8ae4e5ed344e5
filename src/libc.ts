import { dlopen, FFIType, read } from "bun:ffi";
import { constants } from "node:os";

/** C libraries to load system calls from: glibc, then musl on x64 and arm64. */
const LIBC_NAMES = ["libc.so.6", "libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1"];

/** The C library functions that tinylb calls for what Bun offers no API for. */
const SYMBOLS = {
  setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  fcntl: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
  socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  sendto: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i64 },
  clock_gettime: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
  __errno_location: { args: [], returns: FFIType.ptr },
} as const;

/** The loaded C library functions (see SYMBOLS). */
export type LibcSymbols = ReturnType<typeof dlopen<typeof SYMBOLS>>["symbols"];

let loaded: LibcSymbols | null | undefined;

/**
 * Loads the C library's functions through bun:ffi once. Returns null when no C library can be
 * opened, such as in a binary run without one; callers fall back or report that then.
 */
export function loadLibc(): LibcSymbols | null {
  if (loaded !== undefined) {
    return loaded;
  }

  loaded = null;
  for (const name of LIBC_NAMES) {
    try {
      loaded = dlopen(name, SYMBOLS).symbols;
      break;
    } catch {
      // Not this C library; try the next name.
    }
  }

  return loaded;
}

/**
 * Returns the errno code (such as "ENOENT") of the C library call that just failed.
 * NOTE: read it right after the failed call. Bun may make system calls of its own in between,
 * which would replace errno.
 */
export function lastErrorCode(libc: LibcSymbols): string {
  const location = libc.__errno_location();
  const errno = location === null ? 0 : read.i32(location, 0);
  const name = Object.entries(constants.errno).find(([, value]) => value === errno)?.[0];

  return name ?? `errno ${errno}`;
}

/** `F_DUPFD_CLOEXEC` from Linux's <fcntl.h>: duplicate a descriptor with close-on-exec set. */
const F_DUPFD_CLOEXEC = 1030;

/** Duplicates descriptor `fd` with close-on-exec set; returns the new descriptor, or -1 with the cause in `lastErrorCode`. */
export function duplicateDescriptor(libc: LibcSymbols, fd: number): number {
  return libc.fcntl(fd, F_DUPFD_CLOEXEC, 0);
}
