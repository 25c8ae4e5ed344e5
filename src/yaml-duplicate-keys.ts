/**
 * The YAML half of the duplicate key check: block mappings by their indentation, with flow
 * collections and quoted scalars handed to `FlowScanner`.
 */
import { type DuplicateKey, type KeyLines, recordKey } from "./duplicate-keys.ts";
import { decodeYamlQuoted, endOfYamlQuoted, FlowScanner } from "./yaml-flow-scanner.ts";

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
  const duplicate = recordKey(block.keys, key.key, lineNumber);
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
