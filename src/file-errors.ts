import { dirname } from "node:path";

/**
 * Describes a failed file read or write in plain words with the fix, from the errno code
 * node:fs attaches (ENOENT, EACCES, EPERM, EISDIR, ENOTDIR, ENOSPC, EROFS, ELOOP). Other
 * errors keep their own message. A write names the folder, since creating a file fails on
 * the folder, and a temporary file's name would only mislead.
 */
export function describeFileError(error: unknown, access: "read" | "write" = "read", path?: string): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  const folder = path === undefined ? "the folder" : `the folder ${dirname(path)}`;
  switch (code) {
    case "ENOENT":
      return access === "read" ? "the file does not exist" : `${folder} does not exist; create it or pick another path`;
    case "EACCES":
    case "EPERM":
      return access === "read"
        ? "permission denied; make the file readable, and each folder on its path searchable, by the user tinylb runs as"
        : `permission denied; give the user tinylb runs as write and search (x) permission on ${folder}`;
    case "EISDIR":
      return "it is a folder, not a file";
    case "ENOTDIR":
      return "a part of the path is not a folder";
    case "ENOSPC":
      return "no space left on the device";
    case "EROFS":
      return "the file system is read-only; pick a path on a writable one";
    case "ELOOP":
      return "too many levels of symbolic links";
  }

  return error instanceof Error ? error.message : String(error);
}

/**
 * Describes a failed read of the file at `path` that the config key `key` names. With
 * `configPath`, the tinylb config file that sets the key, the message names the key, as
 * `invalid config CONFIG: KEY: cannot read PATH: DETAIL`, in the form of the config check's
 * other problems. Without it, the path came from a flag or a default, and the message is
 * `read LABEL PATH failed: DETAIL`, such as `read kubeconfig /root/.kube/config failed: ...`.
 */
export function describeKeyFileReadError(error: unknown, file: { path: string; label: string; key: string; configPath: string | undefined }): string {
  const detail = describeFileError(error);

  return file.configPath === undefined ? `read ${file.label} ${file.path} failed: ${detail}` : `invalid config ${file.configPath}: ${file.key}: cannot read ${file.path}: ${detail}`;
}
