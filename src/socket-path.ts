/**
 * Rules for a Unix socket path, checked where an address is parsed, so that a start,
 * `tinylb check` and the admin API reject a path that bind(2) or connect(2) would reject.
 */

/** Maximum length in bytes of a Unix socket path on Linux: sun_path has 108 bytes, one of them the final NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;

/** Describes why `path` cannot name a Unix socket, with the fix, or returns undefined when it can. */
export function socketPathProblem(path: string): string | undefined {
  const bytes = Buffer.byteLength(path);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    return `the path has ${bytes} bytes, more than the ${MAX_SOCKET_PATH_BYTES} a Unix socket path can have; use a shorter path`;
  }

  return undefined;
}
