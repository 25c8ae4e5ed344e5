/**
 * Writes `text` as a YAML config file would, so that Bun's YAML parser reads it back as that
 * same string: plain where it is, else in double quotes. `[::1]:9100` unquoted is a flow list,
 * `7` and `0x10` are numbers, and `#x` starts a comment, so those are quoted.
 *
 * The check parses the text as the one item of a flow list, which is stricter than a block
 * value (a comma or a bracket ends an item), so the result is valid in both places.
 */
export function yamlScalar(text: string): string {
  return readsBackAsItself(text) ? text : JSON.stringify(text);
}

function readsBackAsItself(text: string): boolean {
  if (text === "" || text.includes("\n")) {
    return false;
  }
  try {
    const parsed: unknown = Bun.YAML.parse(`[${text}]`);

    return Array.isArray(parsed) && parsed.length === 1 && parsed[0] === text;
  } catch {
    return false;
  }
}
