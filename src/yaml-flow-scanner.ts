/** Scanning of YAML flow collections and quoted scalars for the duplicate key check. */
import { type DuplicateKey, type KeyLines, recordKey } from "./duplicate-keys.ts";

/** Returns the index just past the closing quote of the quoted scalar at `start`, or undefined when it does not close on this line. */
export function endOfYamlQuoted(text: string, start: number): number | undefined {
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

export function decodeYamlQuoted(literal: string): string {
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
export class FlowScanner {
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
          const duplicate = recordKey(keys, key, lineNumber);
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
