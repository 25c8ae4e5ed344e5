/** A URL's scheme and user information, such as `https://user:password@`, up to the `@`. */
const USER_INFO = /^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i;

/**
 * Returns `url` with its user name and password replaced by `***`, such as
 * `https://***@10.0.0.11:6443` for `https://admin:secret@10.0.0.11:6443`, so that a log line
 * or a status field never shows them. Text that is not such a URL is returned unchanged.
 */
export function maskUrlCredentials(url: string): string {
  return url.replace(USER_INFO, "$1***@");
}
