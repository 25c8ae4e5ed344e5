import { closeSync, constants, fstatSync, openSync, readSync, statSync, type Stats } from "node:fs";

/**
 * Largest bearer token file read, in bytes. A token is one line, and a Kubernetes service
 * account token is typically 1 to 2 KiB.
 */
export const MAX_TOKEN_FILE_BYTES = 64 * 1024;

/**
 * Largest PEM file read (a CA bundle, a certificate or a key), in bytes. Debian's bundle of
 * every public CA, /etc/ssl/certs/ca-certificates.crt, is about 215 KiB.
 */
export const MAX_PEM_FILE_BYTES = 1024 * 1024;

/**
 * Reads a file that a setting names, at most `maxBytes` of it, without waiting on a FIFO
 * or reading a device.
 *
 * Only a regular file, or a symlink to one, is read. A FIFO would block the read until a
 * writer appears, and a device such as /dev/zero never ends, so both are rejected before any
 * read, like a folder or a socket. The path is checked with stat(2) first, so that a device
 * is never opened, and the open file again with fstat(2). The open uses O_NONBLOCK, so a
 * FIFO swapped in between cannot block it either. At most `maxBytes + 1` bytes are read,
 * the extra byte telling a file that grew past the limit after the check.
 *
 * The read is synchronous. It is bounded by `maxBytes` and never waits for a writer, so it
 * holds up the event loop only for as long as the disk takes.
 *
 * @throws {Error} from node:fs with its errno `code` (ENOENT, EACCES, ...) when stat, open or
 *   read fails, or without a code, its message saying what the path is or that the file is
 *   too large. `describeFileError` words either.
 */
export function readRegularFile(path: string, maxBytes: number): Buffer {
  rejectIrregular(statSync(path));
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  try {
    const stats = fstatSync(fd);
    rejectIrregular(stats);
    if (stats.size > maxBytes) {
      throw new Error(`the file has ${stats.size} bytes, more than the ${maxBytes} allowed`);
    }

    return readAtMost(fd, stats.size, maxBytes);
  } finally {
    closeSync(fd);
  }
}

/** Throws an error naming what the path is, unless it is a regular file. */
function rejectIrregular(stats: Stats): void {
  if (stats.isFile()) {
    return;
  }
  if (stats.isDirectory()) {
    throw new Error("it is a folder, not a file");
  }

  throw new Error(`it is ${describeFileType(stats)}, not a regular file; name a regular file or a symlink to one`);
}

/** Names the kind of a file that is neither a regular file nor a folder, such as "a FIFO (named pipe)". */
export function describeFileType(stats: Stats): string {
  if (stats.isFIFO()) {
    return "a FIFO (named pipe)";
  }
  if (stats.isCharacterDevice()) {
    return "a character device";
  }
  if (stats.isBlockDevice()) {
    return "a block device";
  }

  return stats.isSocket() ? "a socket" : "a special file";
}

/**
 * Reads `fd` to its end. The buffer starts at the size fstat reported and grows by doubling
 * for a file that grows meanwhile, up to `maxBytes + 1` bytes.
 */
function readAtMost(fd: number, expectedBytes: number, maxBytes: number): Buffer {
  let buffer = Buffer.alloc(expectedBytes + 1);
  let length = 0;
  for (;;) {
    if (length === buffer.length) {
      if (length > maxBytes) {
        throw new Error(`the file has more than the ${maxBytes} bytes allowed`);
      }
      const grown = Buffer.alloc(Math.min(buffer.length * 2, maxBytes + 1));
      buffer.copy(grown);
      buffer = grown;
    }
    const read = readSync(fd, buffer, length, buffer.length - length, null);
    if (read === 0) {
      return buffer.subarray(0, length);
    }
    length += read;
  }
}
