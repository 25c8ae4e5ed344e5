/**
 * Finds a key given twice in one mapping of a YAML or JSON config file.
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
type KeyLines = Map<string, number>;

/** Records `key` in `keys`; returns the duplicate when it was there already. Merge keys (`<<`) never count. */
function record(keys: KeyLines, key: string, line: number): DuplicateKey | undefined {
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
        const duplicate = record(top, decodeJsonString(text.slice(index, end)), line);
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

/** State of the YAML scan that carries over from one line to the next. */
interface YamlScan {
  /** Open block mappings, innermost last, each with the column of its keys. */
  blocks: { column: number; keys: KeyLines }[];
  /** While inside a block scalar (`|` or `>`): the column of its parent, deeper lines belong to it. */
  blockScalarParent?: number;
  /** While inside a flow collection or a quoted scalar that spans lines: its scanner. */
  flow?: FlowScanner;
}

/**
 * Finds the first key given twice in one mapping of a YAML text: block mappings by their
 * indentation, and flow mappings (`{ id: a, target: b }`) at any depth, also across lines.
 * Quoted keys are compared by their text, so `a` and `'a'` are the same key. Merge keys (`<<`)
 * are skipped, so a key that overrides a merged one is not a duplicate.
 *
 * NOTE: explicit keys (`? key`) and keys behind an anchor or a tag are not followed. A duplicate
 * of such a key is not found, and no false duplicate comes from them either.
 */
export function findDuplicateYamlKey(text: string): DuplicateKey | undefined {
  const scan: YamlScan = { blocks: [] };
  const lines = text.split("\n");
  for (const [index, rawLine] of lines.entries()) {
    const duplicate = scanYamlLine(scan, rawLine.endsWith("\r") ? rawLine.slice(0, -1) : rawLine, index + 1);
    if (duplicate !== undefined) {
      return duplicate;
    }
  }

  return undefined;
}

function scanYamlLine(scan: YamlScan, line: string, lineNumber: number): DuplicateKey | undefined {
  if (scan.flow !== undefined) {
    const result = scan.flow.feed(line, 0, lineNumber);
    if (result.duplicate !== undefined || !result.done) {
      return result.duplicate;
    }
    scan.flow = undefined;

    return undefined;
  }

  const column = line.length - line.trimStart().length;
  const blank = /^\s*(#.*)?$/.test(line);
  if (scan.blockScalarParent !== undefined) {
    if (blank || column > scan.blockScalarParent) {
      return undefined;
    }
    scan.blockScalarParent = undefined;
  }
  if (blank || line.startsWith("%")) {
    return undefined;
  }
  if (/^(---|\.\.\.)(\s|$)/.test(line)) {
    scan.blocks = [];

    return undefined;
  }

  return scanYamlNode(scan, line, column, lineNumber);
}

/** Scans the node that starts at `column` of `line`: sequence dashes, then a key or a value. */
function scanYamlNode(scan: YamlScan, line: string, start: number, lineNumber: number): DuplicateKey | undefined {
  let column = start;
  // Each "- " opens a sequence item, which ends every deeper mapping of the previous item.
  while (line[column] === "-" && (column + 1 === line.length || line[column + 1] === " ")) {
    popBlocksDeeperThan(scan, column);
    const dash = column;
    column++;
    while (line[column] === " ") {
      column++;
    }
    if (column >= line.length || line[column] === "#") {
      return undefined;
    }
    if (isBlockScalarHeader(line.slice(column))) {
      scan.blockScalarParent = dash;

      return undefined;
    }
  }

  const rest = line.slice(column);
  const key = readBlockKey(rest);
  if (key === undefined) {
    return scanYamlValue(scan, line, column, lineNumber, column);
  }

  popBlocksDeeperThan(scan, column);
  let block = scan.blocks.at(-1);
  if (block === undefined || block.column < column) {
    block = { column, keys: new Map() };
    scan.blocks.push(block);
  }
  const duplicate = record(block.keys, key.key, lineNumber);
  if (duplicate !== undefined) {
    return duplicate;
  }

  return scanYamlValue(scan, line, column + key.valueOffset, lineNumber, column);
}

function popBlocksDeeperThan(scan: YamlScan, column: number): void {
  while ((scan.blocks.at(-1)?.column ?? -1) > column) {
    scan.blocks.pop();
  }
}

/** Scans a value that starts at `start`: a block scalar header, or a flow collection or quoted scalar that may span lines. */
function scanYamlValue(scan: YamlScan, line: string, start: number, lineNumber: number, parentColumn: number): DuplicateKey | undefined {
  let index = start;
  while (line[index] === " ") {
    index++;
  }
  const value = line.slice(index);
  if (isBlockScalarHeader(value)) {
    scan.blockScalarParent = parentColumn;

    return undefined;
  }
  if (value.startsWith("{") || value.startsWith("[") || value.startsWith('"') || value.startsWith("'")) {
    const flow = new FlowScanner();
    const result = flow.feed(line, index, lineNumber);
    if (result.duplicate === undefined && !result.done) {
      scan.flow = flow;
    }

    return result.duplicate;
  }

  return undefined;
}

function isBlockScalarHeader(value: string): boolean {
  return /^[|>][0-9+-]*\s*(#.*)?$/.test(value);
}

/**
 * Reads the key of a block mapping entry at the start of `text`: a plain or quoted scalar
 * followed by `:` and a space or the line's end. Returns the key and the offset of its value.
 */
function readBlockKey(text: string): { key: string; valueOffset: number } | undefined {
  if (text.startsWith('"') || text.startsWith("'")) {
    const end = endOfYamlQuoted(text, 0);
    if (end === undefined) {
      return undefined;
    }
    let index = end;
    while (text[index] === " ") {
      index++;
    }
    if (text[index] === ":" && (index + 1 === text.length || text[index + 1] === " ")) {
      return { key: decodeYamlQuoted(text.slice(0, end)), valueOffset: index + 1 };
    }

    return undefined;
  }
  // Keys that start with an indicator (explicit keys, anchors, tags, aliases, flow) are not followed.
  if (/^[?&!*{[\]},|>@`#%]/.test(text)) {
    return undefined;
  }
  for (let index = 0; index < text.length; index++) {
    const char = text[index];
    if (char === "#" && index > 0 && text[index - 1] === " ") {
      return undefined;
    }
    if (char === ":" && (index + 1 === text.length || text[index + 1] === " " || text[index + 1] === "\t")) {
      return { key: text.slice(0, index).trimEnd(), valueOffset: index + 1 };
    }
  }

  return undefined;
}

/** Returns the index just past the closing quote of the quoted scalar at `start`, or undefined when it does not close on this line. */
function endOfYamlQuoted(text: string, start: number): number | undefined {
  const quote = text[start];
  let index = start + 1;
  while (index < text.length) {
    if (quote === '"' && text[index] === "\\") {
      index += 2;
      continue;
    }
    if (text[index] === quote) {
      if (quote === "'" && text[index + 1] === "'") {
        index += 2;
        continue;
      }

      return index + 1;
    }
    index++;
  }

  return undefined;
}

function decodeYamlQuoted(literal: string): string {
  const body = literal.slice(1, -1);
  if (literal.startsWith("'")) {
    return body.replace(/''/g, "'");
  }
  try {
    return JSON.parse(literal) as string;
  } catch {
    return body;
  }
}

/**
 * Follows a YAML flow collection (`{...}`, `[...]`) or a quoted scalar across lines, and
 * checks the keys of each flow mapping in it.
 */
class FlowScanner {
  /** One entry per open bracket: the keys of a mapping, or null for a sequence. */
  #stack: (KeyLines | null)[] = [];
  #expectKey = false;
  /** The quote of a quoted scalar still open at the end of the last line, if any. */
  #openQuote?: string;
  /** A scalar read in a mapping where a key may start, waiting for a `:` after it. */
  #candidate?: string;

  /** Scans `line` from `start`; `done` is true once every bracket and quote has closed. */
  feed(line: string, start: number, lineNumber: number): { done: boolean; duplicate?: DuplicateKey } {
    let index = start;
    if (this.#openQuote !== undefined) {
      const end = this.#closeQuote(line, 0, this.#openQuote);
      if (end === undefined) {
        return { done: false };
      }
      this.#openQuote = undefined;
      index = end;
      if (this.#stack.length === 0) {
        return { done: true };
      }
    }

    while (index < line.length) {
      const char = line[index]!;
      if (char === " " || char === "\t") {
        index++;
        continue;
      }
      if (char === "#" && (index === 0 || line[index - 1] === " " || line[index - 1] === "\t")) {
        break;
      }
      if (char === ":" && this.#candidate !== undefined) {
        const keys = this.#stack.at(-1);
        const key = this.#candidate;
        this.#candidate = undefined;
        this.#expectKey = false;
        if (keys) {
          const duplicate = record(keys, key, lineNumber);
          if (duplicate !== undefined) {
            return { done: false, duplicate };
          }
        }
        index++;
        continue;
      }
      this.#candidate = undefined;
      if (char === ":") {
        // A value indicator after a scalar that could not be a key, as in `[a: 1]`.
        index++;
        continue;
      }
      if (char === "{" || char === "[") {
        this.#stack.push(char === "{" ? new Map() : null);
        this.#expectKey = char === "{";
        index++;
        continue;
      }
      if (char === "}" || char === "]") {
        this.#stack.pop();
        this.#expectKey = false;
        index++;
        if (this.#stack.length === 0) {
          return { done: true };
        }
        continue;
      }
      if (char === ",") {
        this.#expectKey = this.#stack.at(-1) instanceof Map;
        index++;
        continue;
      }
      if (char === '"' || char === "'") {
        const end = this.#closeQuote(line, index + 1, char);
        if (end === undefined) {
          this.#openQuote = char;

          return { done: false };
        }
        if (this.#expectKey) {
          this.#candidate = decodeYamlQuoted(line.slice(index, end));
        }
        index = end;
        if (this.#stack.length === 0) {
          return { done: true };
        }
        continue;
      }
      // Every character that ends a plain scalar is handled above, so this always advances.
      index = Math.max(this.#readPlain(line, index), index + 1);
    }

    return { done: this.#stack.length === 0 && this.#openQuote === undefined };
  }

  /** Returns the index past the closing `quote` at or after `from`, or undefined when the line ends first. */
  #closeQuote(line: string, from: number, quote: string): number | undefined {
    const end = endOfYamlQuoted(quote + line.slice(from), 0);

    return end === undefined ? undefined : from + end - 1;
  }

  /** Reads a plain scalar in flow context; it ends at `,[]{}`, at `: `, or at ` #`. */
  #readPlain(line: string, start: number): number {
    let index = start;
    while (index < line.length) {
      const char = line[index]!;
      if (",[]{}".includes(char)) {
        break;
      }
      if (char === ":" && (index + 1 === line.length || " \t,[]{}".includes(line[index + 1]!))) {
        break;
      }
      if (char === "#" && (line[index - 1] === " " || line[index - 1] === "\t")) {
        break;
      }
      index++;
    }
    if (this.#expectKey) {
      this.#candidate = line.slice(start, index).trimEnd();
    }

    return index;
  }
}
