/**
 * Returns the detail of a JSON.parse error without Bun's "JSON Parse error: " prefix, so a
 * message that starts with "invalid JSON" does not repeat it. Bun 1.4.4 starts every such
 * SyntaxError message with that prefix.
 */
export function jsonSyntaxDetail(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);

  return message.replace(/^JSON Parse error: /, "");
}

/** Characters of a request body quoted before the place where it stops being JSON. */
const QUOTED_CHARACTERS = 30;

/**
 * Maximum length of a body whose error is placed. Placing takes a parse per halving of the
 * body, on the thread that relays traffic, so a body of 1 MiB would hold it for about 0.4 s.
 */
const MAX_PLACED_LENGTH = 64 * 1024;

/** Names of the control characters that JSON has a short escape for, and of U+0000. */
const CONTROL_CHARACTER_NAMES: ReadonlyMap<string, string> = new Map([
  ["\u0000", "null character"],
  ["\b", "backspace"],
  ["\t", "tab"],
  ["\n", "newline"],
  ["\f", "form feed"],
  ["\r", "carriage return"],
]);

/**
 * Returns the message for a request body `text` that `JSON.parse` rejected with `error`. An
 * unescaped control character in a string is placed and named first, because Bun's JSONC
 * parser reports a tab as `Syntax Error` at the end of the string, and a line break as an
 * unterminated string at its start. Where
 * Bun's JSONC parser rejects the text too, its message is used, because it names what it
 * expected (`Expected "]" but found end of file` where `JSON.parse` reports `Unexpected EOF`),
 * with the position and the text before it. A text that JSONC accepts has a comment, a
 * trailing comma or a second value: a trailing comma is placed, the others are named.
 */
export function describeJsonBodyError(text: string, error: unknown): string {
  // Placing takes a few scans of the text, so a body over MAX_PLACED_LENGTH is not placed.
  const control = text.length > MAX_PLACED_LENGTH ? undefined : unescapedControlCharacterIndex(text);
  if (control !== undefined) {
    return describeControlCharacter(text, control);
  }

  const jsoncMessage = jsoncErrorMessage(text);
  if (jsoncMessage === undefined) {
    const comma = trailingCommaIndex(text);
    if (comma !== undefined) {
      return `invalid JSON in request body at ${describePosition(text, comma)}: a trailing comma, which JSON does not allow, after \`${quoteBefore(text, comma + 1)}\``;
    }

    return `invalid JSON in request body: ${jsonSyntaxDetail(error)}; look for what JavaScript allows and JSON does not, such as a comment, single quotes, a number such as 0x10 or .5, or a second value`;
  }

  const detail = jsoncMessage.replace(/^JSONC Parse error: /, "");
  if (/end of file/.test(detail)) {
    return `invalid JSON in request body at its end: ${detail}`;
  }
  if (text.length > MAX_PLACED_LENGTH) {
    return `invalid JSON in request body: ${detail}`;
  }
  const end = shortestFailingPrefix(text, jsoncMessage);

  return `invalid JSON in request body at ${describePosition(text, tokenStart(text, end, detail))}: ${detail}, after \`${quoteBefore(text, end)}\``;
}

/**
 * Returns the index of the first control character (U+0000 to U+001F) inside a string of
 * `text`, which JSON requires to be escaped. The JSONC parser must accept the text before it
 * as a start cut inside that string, so the character is the first error it would place.
 * Returns undefined otherwise.
 */
function unescapedControlCharacterIndex(text: string): number | undefined {
  for (const string of text.matchAll(/"(?:[^"\\]|\\[\s\S])*"?/g)) {
    const offset = string[0].search(/[\u0000-\u001f]/);
    if (offset === -1) {
      continue;
    }
    const index = string.index + offset;

    // Bun 1.4.4's JSONC parser rejects a text cut inside a string, and nothing before it, with
    // this message. Another message means an earlier error, which the JSONC checks below place.
    return jsoncErrorMessage(text.slice(0, index)) === "JSONC Parse error: Unterminated string literal" ? index : undefined;
  }

  return undefined;
}

/** Describes the unescaped control character at `index` of a string, with the escape to write in its place. */
function describeControlCharacter(text: string, index: number): string {
  const character = text[index]!;
  const codePoint = `U+${character.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}`;
  const name = CONTROL_CHARACTER_NAMES.get(character) ?? "control character";
  const escape = JSON.stringify(character).slice(1, -1);
  // A line break in a string may be a missing closing quote rather than a missing escape.
  const closeHint = character === "\n" || character === "\r" ? ', or close the string with " before the line break' : "";

  return `invalid JSON in request body at ${describePosition(text, index)}: unescaped ${name} (${codePoint}) in a string, after \`${quoteBefore(text, index)}\`; JSON requires control characters in strings to be escaped, so write it as ${escape}${closeHint}`;
}

/**
 * Returns the index of the first character of the token that ends at `end` (exclusive), when
 * `detail` names it as JSONC messages do (`but found ""target""`, `Unexpected notjson`), or
 * `end - 1`.
 */
function tokenStart(text: string, end: number, detail: string): number {
  const token = /found "(.+)"$/.exec(detail)?.[1] ?? /^Unexpected (.+)$/.exec(detail)?.[1];

  return token !== undefined && text.slice(end - token.length, end) === token ? end - token.length : end - 1;
}

/** Returns the place of the character at `index`: its line and column in a text of several lines, else its character number. */
function describePosition(text: string, index: number): string {
  if (!text.includes("\n")) {
    return `character ${index + 1}`;
  }
  const before = text.slice(0, index);

  return `line ${before.split("\n").length}, column ${index - before.lastIndexOf("\n")}`;
}

/** Returns up to QUOTED_CHARACTERS characters of `text` before `end`, with newlines escaped. */
function quoteBefore(text: string, end: number): string {
  const start = Math.max(0, end - QUOTED_CHARACTERS);

  return `${start > 0 ? "..." : ""}${text.slice(start, end).replaceAll("\n", "\\n")}`;
}

/**
 * Returns the index of the first comma that only white space and comments separate from a
 * closing `]` or `}`, outside strings and comments.
 */
function trailingCommaIndex(text: string): number | undefined {
  const code = withoutStringsAndComments(text);
  const match = /,(?=\s*[\]}])/.exec(code);

  return match?.index;
}

/**
 * Returns `text` with every string and comment replaced by spaces of the same length, so that
 * a search of the rest keeps the indexes of the text.
 */
function withoutStringsAndComments(text: string): string {
  return text.replace(/"(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?|\/\/[^\n]*|\/\*[\s\S]*?(?:\*\/|$)/g, (part) => " ".repeat(part.length));
}

function jsoncErrorMessage(text: string): string | undefined {
  try {
    Bun.JSONC.parse(text);

    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/**
 * Returns the length of the shortest start of `text` that the JSONC parser rejects with
 * `message`, which ends where the parser found the problem. Shorter starts fail with an end
 * of file message instead, so a binary search finds it.
 */
function shortestFailingPrefix(text: string, message: string): number {
  let low = 1;
  let high = text.length;
  while (low < high) {
    const middle = Math.floor((low + high) / 2);
    if (jsoncErrorMessage(text.slice(0, middle)) === message) {
      high = middle;
    } else {
      low = middle + 1;
    }
  }

  return low;
}
