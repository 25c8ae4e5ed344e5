/**
 * Example backend entries for messages about a `backends` list written in another shape, built
 * from what the user wrote where possible, in the syntax of the config file or of JSON.
 */
import { yamlScalar } from "./yaml-scalar.ts";
import type { ExampleSyntax } from "./zod-messages.ts";

/**
 * Returns a backend entry in `syntax`, built from an `ID=TARGET` string as the `--backend`
 * flag takes it, or an example for any other string.
 */
export function backendExample(syntax: ExampleSyntax, text: string): string {
  const match = /^([^=\s]+)=(\S+)$/.exec(text);
  const [id, target] = match === null ? ["api-1", "10.0.0.1:6443"] : [match[1]!, match[2]!];
  switch (syntax) {
    case "yaml":
      return `{ id: ${yamlScalar(id)}, target: ${yamlScalar(target)} }`;
    case "toml":
      return `{ id = ${JSON.stringify(id)}, target = ${JSON.stringify(target)} }`;
    case "json":
      return `{"id": ${JSON.stringify(id)}, "target": ${JSON.stringify(target)}}`;
  }
}

/**
 * Returns up to two list entries built from a `backends` mapping, in the mapping's order, or
 * an example entry. The mapping may be one entry written without its list (`id` and
 * `target`), map ids to targets (`ID: TARGET`) or to entries without their id
 * (`ID: { target: TARGET }`), or mix the two, such as
 * `{ target: 10.0.0.1:6443, api: 10.0.0.2:6443 }`. A key of an entry of `listSchema`, such
 * as `probe`, is never read as an id. Returns undefined when `mapping` is not a mapping.
 */
export function backendListExample(syntax: ExampleSyntax, mapping: unknown, listSchema: unknown): string | undefined {
  if (!isPlainObject(mapping)) {
    return undefined;
  }
  const entryKeys = entryKeysOf(listSchema);
  // Each entry as the --backend flag writes it, ID=TARGET.
  const entries: string[] = [];
  for (const [key, value] of Object.entries(mapping)) {
    if (entries.length === 2) {
      break;
    }
    if (key === "target" && typeof value === "string") {
      // One entry written without its list, such as `backends: { id: a, target: 10.0.0.1:6443 }`.
      entries.push(`${typeof mapping.id === "string" ? mapping.id : "api-1"}=${value}`);
    } else if (!entryKeys.has(key)) {
      const target = isPlainObject(value) ? value.target : value;
      if (typeof target !== "string") {
        return backendExample(syntax, "");
      }
      entries.push(`${key}=${target}`);
    }
  }
  if (entries.length === 0) {
    return backendExample(syntax, "");
  }

  return entries.map((entry) => backendExample(syntax, entry)).join(", ");
}

/**
 * Returns the keys of an entry of the list schema `listSchema`, such as `id` and `target`,
 * through a transform of the entry. Returns just those two when the schema has no object entries.
 */
function entryKeysOf(listSchema: unknown): ReadonlySet<string> {
  let entry = (listSchema as SchemaInternals | undefined)?._zod?.def?.element;
  while (entry?._zod?.def?.type === "pipe") {
    entry = entry._zod.def.in;
  }
  const shape = entry?._zod?.def?.shape;

  return new Set(shape === undefined ? ["id", "target"] : Object.keys(shape));
}

/** The fields of a zod schema's definition that `entryKeysOf` reads. */
interface SchemaInternals {
  _zod?: { def?: { type?: string; element?: SchemaInternals; in?: SchemaInternals; shape?: Record<string, unknown> } };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
