/**
 * Hints for YAML parse errors that an unquoted address causes. YAML reads a plain value that
 * starts with `*` as an alias, so `listen: *:7443` fails with "Unresolved alias", and one
 * that starts with `[` as a list, so `target: [::1]:80` fails with "Unexpected token".
 */

/** A plain YAML value, after a key or a list dash, that starts with `*` and goes on with `:PORT`. */
const UNQUOTED_ANY_HOST = /(?:^|[\s[{,:-])\*:(\d+)/;

/** An unquoted `[IPV6]:PORT`, where the address has a colon and only hexadecimal digits, colons, dots and a zone. */
const UNQUOTED_IPV6 = /(?:^|[\s[{,:-])(\[[0-9a-f.]*:[0-9a-f:.]*(?:%[\w.-]+)?\]:\d+)/i;

/**
 * Returns the hint for a YAML parse error with message `detail` on the line `line`, or
 * undefined when no unquoted address explains it.
 */
export function yamlAddressHint(detail: string, line: string): string | undefined {
  const anyHost = UNQUOTED_ANY_HOST.exec(line);
  if (anyHost !== null && detail.startsWith("Unresolved alias")) {
    return `; YAML reads a value that starts with * as an alias, so quote the address, as in "*:${anyHost[1]}"`;
  }
  const ipv6 = UNQUOTED_IPV6.exec(line);
  if (ipv6 !== null) {
    return `; YAML reads a value that starts with [ as a list, so quote an IPv6 address, as in "${ipv6[1]}"`;
  }

  return undefined;
}
