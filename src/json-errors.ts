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
 * Returns the message for a request body `text` that `JSON.parse` rejected with `error`. Where
 * Bun's JSONC parser rejects the text too, its message is used, because it names what it
 * expected (`Expected "]" but found end of file` where `JSON.parse` reports `Unexpected EOF`),
 * with the position and the text before it. A text that JSONC accepts has a comment, a
 * trailing comma or a second value, so the message names those.
 */
export function describeJsonBodyError(text: string, error: unknown): string {
  const jsoncMessage = jsoncErrorMessage(text);
  if (jsoncMessage === undefined) {
    return `invalid JSON in request body: ${jsonSyntaxDetail(error)}; look for a trailing comma, a comment or a second value, which JSON does not allow`;
  }

  const detail = jsoncMessage.replace(/^JSONC Parse error: /, "");
  if (/end of file/.test(detail)) {
    return `invalid JSON in request body at its end: ${detail}`;
  }
  const end = shortestFailingPrefix(text, jsoncMessage);
  const start = Math.max(0, end - QUOTED_CHARACTERS);
  const quoted = `${start > 0 ? "..." : ""}${text.slice(start, end).replaceAll("\n", "\\n")}`;

  return `invalid JSON in request body at character ${end}: ${detail}, after \`${quoted}\``;
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
