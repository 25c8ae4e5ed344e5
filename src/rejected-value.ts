/**
 * The rejected value in config and flag errors: every such error names the value it got, either
 * in its own text or as a trailing `(got VALUE)`.
 */

/** Characters that continue a value, so `v2` does not name 2 and `100` does not name 1. */
const VALUE_CHARACTER = /[\w.+-]/;

/**
 * Checks whether `message` names `value`: quoted as JSON (`"v2"`), or written out as a whole word
 * (`invalid duration 10: ...`).
 */
export function namesValue(message: string, value: string | number | boolean | bigint): boolean {
  if (typeof value === "string" && message.includes(JSON.stringify(value))) {
    return true;
  }

  const text = String(value);
  if (text === "") {
    return false;
  }
  for (let at = message.indexOf(text); at !== -1; at = message.indexOf(text, at + 1)) {
    const before = message[at - 1] ?? "";
    const after = message[at + text.length] ?? "";
    if (!VALUE_CHARACTER.test(before) && !VALUE_CHARACTER.test(after)) {
      return true;
    }
  }

  return false;
}

/** Items and levels of a list that `describeList` shows; the rest is counted or elided. */
const MAX_LIST_ITEMS = 5;
const MAX_LIST_DEPTH = 3;

/** Maximum length of an item that `describeList` shows whole; a longer one is cut and its length given. */
const MAX_ITEM_CHARS = 60;

/**
 * Writes a rejected list for a message, such as `["1s"]`, with at most MAX_LIST_ITEMS items
 * per level and MAX_LIST_DEPTH levels, so that neither a huge nor a deeply nested list floods
 * the log or overflows the stack. An object in it is shown as `{...}`.
 */
export function describeList(list: readonly unknown[], depth = 1): string {
  if (depth > MAX_LIST_DEPTH) {
    return "[...]";
  }
  const items = list.slice(0, MAX_LIST_ITEMS).map((item) => describeListItem(item, depth));
  if (list.length > MAX_LIST_ITEMS) {
    items.push(`and ${list.length - MAX_LIST_ITEMS} more`);
  }

  return `[${items.join(", ")}]`;
}

function describeListItem(item: unknown, depth: number): string {
  if (Array.isArray(item)) {
    return describeList(item, depth + 1);
  }
  if (item !== null && typeof item === "object") {
    return "{...}";
  }
  const text = typeof item === "bigint" ? String(item) : (JSON.stringify(item) ?? String(item));

  return text.length <= MAX_ITEM_CHARS ? text : `${text.slice(0, MAX_ITEM_CHARS)}... (${text.length} characters)`;
}

/** Appends ` (got "VALUE")` to the message of a rejected flag value, unless the message names the value already. */
export function withRejectedValue(message: string, value: string): string {
  return namesValue(message, value) ? message : `${message} (got ${JSON.stringify(value)})`;
}
