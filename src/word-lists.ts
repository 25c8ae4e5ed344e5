/** Joins words for a message: "a", "a or b", "a, b or c" with the conjunction "or". */
export function joinWords(items: readonly string[], conjunction: "and" | "or"): string {
  return items.length === 1 ? items[0]! : `${items.slice(0, -1).join(", ")} ${conjunction} ${items.at(-1)}`;
}
