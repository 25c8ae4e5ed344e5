/**
 * Finds a key given twice in one mapping of a YAML or JSON config file. This file contains the
 * record of keys and the JSON scanner, and `yaml-duplicate-keys.ts` contains the YAML scanner.
 *
 * Bun 1.4.4's YAML and JSONC parsers keep the last of two equal keys without a word, while
 * YAML 1.2 requires the keys of a mapping to be unique and Bun's TOML parser rejects a
 * repeated key. These scanners run after the parser accepted the text, so they only need to
 * follow the structure, not to check it.
 */

/** A key given twice in one mapping, with the 1-based lines of both. */
export interface DuplicateKey {
  key: string;
  line: number;
  firstLine: number;
}

/** The keys seen so far in one mapping, by key, with the line of each. */
export type KeyLines = Map<string, number>;

/** Records `key` in `keys`; returns the duplicate when it was there already. Merge keys (`<<`) never count. */
export function recordKey(keys: KeyLines, key: string, line: number): DuplicateKey | undefined {
  if (key === "<<") {
    return undefined;
  }
  const firstLine = keys.get(key);
  if (firstLine !== undefined) {
    return { key, line, firstLine };
  }
  keys.set(key, line);

  return undefined;
}

/**
 * Finds the first key given twice in one object of a JSON or JSONC text, which may hold
 * comments, trailing commas and single-quoted strings. Escapes are decoded, so `"\u0061"` and
 * `"a"` are the same key.
 */
export function findDuplicateJsonKey(text: string): DuplicateKey | undefined {
  // One entry per open bracket: the keys of an object, or null for an array.
  const stack: (KeyLines | null)[] = [];
  let expectKey = false;
  let line = 1;
  let index = 0;

  while (index < text.length) {
    const char = text[index]!;
    if (char === "\n") {
      line++;
    } else if (char === "/" && text[index + 1] === "/") {
      const end = text.indexOf("\n", index);
      index = end < 0 ? text.length : end;
      continue;
    } else if (char === "/" && text[index + 1] === "*") {
      const end = text.indexOf("*/", index + 2);
      const stop = end < 0 ? text.length : end + 2;
      line += countNewlines(text, index, stop);
      index = stop;
      continue;
    } else if (char === '"' || char === "'") {
      const end = endOfJsonString(text, index);
      const top = stack.at(-1);
      if (expectKey && top) {
        const duplicate = recordKey(top, decodeJsonString(text.slice(index, end)), line);
        if (duplicate !== undefined) {
          return duplicate;
        }
        expectKey = false;
      }
      line += countNewlines(text, index, end);
      index = end;
      continue;
    } else if (char === "{") {
      stack.push(new Map());
      expectKey = true;
    } else if (char === "[") {
      stack.push(null);
      expectKey = false;
    } else if (char === "}" || char === "]") {
      stack.pop();
      expectKey = false;
    } else if (char === ",") {
      expectKey = stack.at(-1) instanceof Map;
    }
    index++;
  }

  return undefined;
}

function countNewlines(text: string, start: number, end: number): number {
  let count = 0;
  for (let index = start; index < end; index++) {
    if (text.charCodeAt(index) === 10) {
      count++;
    }
  }

  return count;
}

/** Returns the index just past the closing quote of the string that starts at `start`. */
function endOfJsonString(text: string, start: number): number {
  const quote = text[start];
  let index = start + 1;
  while (index < text.length && text[index] !== quote) {
    index += text[index] === "\\" ? 2 : 1;
  }

  return index + 1;
}

function decodeJsonString(literal: string): string {
  const body = literal.slice(1, -1);
  try {
    // A single-quoted JSONC string decodes like a double-quoted one once its quotes are swapped.
    return JSON.parse(`"${literal.startsWith("'") ? body.replace(/\\'/g, "'").replace(/"/g, '\\"') : body}"`) as string;
  } catch {
    return body;
  }
}
