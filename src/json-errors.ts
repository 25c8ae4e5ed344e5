/**
 * Returns the detail of a JSON.parse error without Bun's "JSON Parse error: " prefix, so a
 * message that starts with "invalid JSON" does not repeat it. Bun 1.4.4 starts every such
 * SyntaxError message with that prefix.
 */
export function jsonSyntaxDetail(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);

  return message.replace(/^JSON Parse error: /, "");
}
