import type { Backend } from "./backend.ts";
import { type BackendSet, diffBackendSets } from "./backend-set.ts";

/** Maximum backends listed in one field of a "backend set changed" line; the rest are counted. */
export const MAX_LOGGED_BACKENDS = 64;

/**
 * Returns the fields of a "backend set changed" line: the count, the whole set, and the
 * backends added, removed and retargeted (with old and new target). Each list names at most
 * `MAX_LOGGED_BACKENDS` backends and then "and N more", so a set of 10,000 backends does not
 * write a line of hundreds of kilobytes on every change. Empty lists are left out.
 */
export function describeSetChange(previous: BackendSet, next: BackendSet): Record<string, string | number> {
  const change = diffBackendSets(previous, next);
  const fields: Record<string, string | number> = { count: next.size, backends: boundedList(next.backends, pair) };
  if (change.added.length > 0) {
    fields.added = boundedList(change.added, pair);
  }
  if (change.removed.length > 0) {
    fields.removed = boundedList(change.removed, pair);
  }
  if (change.retargeted.length > 0) {
    fields.retargeted = boundedList(change.retargeted, ({ backend, oldTarget }) => `${backend.id}=${oldTarget}->${backend.target}`);
  }

  return fields;
}

function pair(backend: Backend): string {
  return `${backend.id}=${backend.target}`;
}

/** Formats at most `MAX_LOGGED_BACKENDS` items, so a huge set costs no more than a small one. */
function boundedList<T>(items: readonly T[], format: (item: T) => string): string {
  const shown = items.slice(0, MAX_LOGGED_BACKENDS).map(format).join(",");

  return items.length <= MAX_LOGGED_BACKENDS ? shown : `${shown} and ${items.length - MAX_LOGGED_BACKENDS} more`;
}
