/** Formats the permission bits of a file mode in octal, as chmod takes them, such as `0600` or `1777`. */
export function formatFileMode(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, "0");
}
