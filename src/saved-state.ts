import { z } from "zod";
import { type Backend, createBackend } from "./backend.ts";
import { jsonSyntaxDetail } from "./json-errors.ts";
import { formatFieldPath, plainIssueMessage } from "./zod-messages.ts";

/** Version of the state file layout; a file with another version is not read. */
export const STATE_VERSION = 1;

/** Largest number of backends a state file may list. */
const MAX_SAVED_BACKENDS = 100_000;

const layoutSchema = z.strictObject({
  version: z.literal(STATE_VERSION),
  savedAt: z.string().optional(),
  backends: z.array(z.unknown()).max(MAX_SAVED_BACKENDS),
});

// `disabled` is absent from files written before disabled marks were saved, and from enabled backends.
const entrySchema = z.strictObject({ id: z.string(), target: z.string(), provider: z.string(), disabled: z.boolean().optional() });

/** One saved backend, the provider it came from and whether `tinylb disable` had taken it out of the rotation. */
export interface SavedBackend {
  backend: Backend;
  provider: string;
  disabled: boolean;
}

/** An entry of the file that was left out, with the reason in words. */
export interface SkippedEntry {
  /** Position in the `backends` list, from 0. */
  index: number;
  /** The entry's id, when it has a string id. */
  id?: string;
  reason: string;
}

/** The usable content of a state file. */
export interface SavedState {
  /** When the file was written (ISO 8601), if the file records it. */
  savedAt?: string;
  backends: SavedBackend[];
  skipped: SkippedEntry[];
}

/**
 * Tests one saved backend beyond its syntax, returning why it must be skipped, or undefined
 * to keep it.
 */
export type SavedBackendCheck = (backend: Backend) => string | undefined;

/**
 * Parses the text of a state file. Entries that are invalid, that `check` rejects, or that
 * repeat an id seen before are skipped and listed, so one bad entry does not cost the others.
 *
 * @throws {Error} with a plain message when the text is not JSON or its layout (version,
 *   `backends` list) is wrong, so no entry can be trusted.
 */
export function parseSavedState(text: string, check: SavedBackendCheck = () => undefined): SavedState {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new Error(`the file is not valid JSON: ${jsonSyntaxDetail(error)}`);
  }
  const layout = layoutSchema.safeParse(json, { error: plainIssueMessage });
  if (!layout.success) {
    throw new Error(describeIssues(layout.error, []));
  }

  const backends: SavedBackend[] = [];
  const skipped: SkippedEntry[] = [];
  const seen = new Set<string>();
  for (const [index, raw] of layout.data.backends.entries()) {
    const rawId = (raw as { id?: unknown } | null)?.id;
    const id = typeof rawId === "string" ? rawId : undefined;
    const entry = entrySchema.safeParse(raw, { error: plainIssueMessage });
    if (!entry.success) {
      skipped.push({ index, id, reason: describeIssues(entry.error, ["backends", index]) });
      continue;
    }
    if (seen.has(entry.data.id)) {
      skipped.push({ index, id, reason: `duplicate backend id "${entry.data.id}"` });
      continue;
    }
    let backend: Backend;
    try {
      backend = createBackend(entry.data.id, entry.data.target);
    } catch (error) {
      skipped.push({ index, id, reason: (error as Error).message });
      continue;
    }
    const rejection = check(backend);
    if (rejection !== undefined) {
      skipped.push({ index, id, reason: rejection });
      continue;
    }
    backends.push({ backend, provider: entry.data.provider, disabled: entry.data.disabled === true });
    seen.add(entry.data.id);
  }

  return { savedAt: layout.data.savedAt, backends, skipped };
}

function describeIssues(error: z.ZodError, prefix: PropertyKey[]): string {
  return error.issues.map((issue) => `${formatFieldPath([...prefix, ...issue.path], "(top level)")}: ${issue.message}`).join("; ");
}
