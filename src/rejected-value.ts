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

/** Appends ` (got "VALUE")` to the message of a rejected flag value, unless the message names the value already. */
export function withRejectedValue(message: string, value: string): string {
  return namesValue(message, value) ? message : `${message} (got ${JSON.stringify(value)})`;
}
