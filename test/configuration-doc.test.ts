import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { z } from "zod";
import { fileSchema } from "../src/config.ts";

const DOC = readFileSync(join(import.meta.dir, "..", "docs", "configuration.md"), "utf8");

/** Collects the dotted path of every object key in `schema`, with `[]` for list entries. */
function schemaKeys(schema: z.core.$ZodType, prefix: string, keys: Set<string>): Set<string> {
  const def = schema._zod.def as unknown as Record<string, unknown> & { type: string };
  switch (def.type) {
    case "object":
      for (const [key, value] of Object.entries(def.shape as Record<string, z.core.$ZodType>)) {
        const path = prefix === "" ? key : `${prefix}.${key}`;
        keys.add(path);
        schemaKeys(value, path, keys);
      }
      break;
    case "optional":
    case "nullable":
    case "default":
      schemaKeys(def.innerType as z.core.$ZodType, prefix, keys);
      break;
    case "array":
      schemaKeys(def.element as z.core.$ZodType, `${prefix}[]`, keys);
      break;
    case "union":
      for (const option of def.options as z.core.$ZodType[]) {
        schemaKeys(option, prefix, keys);
      }
      break;
    case "pipe":
      schemaKeys(def.in as z.core.$ZodType, prefix, keys);
      schemaKeys(def.out as z.core.$ZodType, prefix, keys);
      break;
  }

  return keys;
}

const keys = [...schemaKeys(fileSchema, "", new Set())];

test("schema walk finds nested keys", () => {
  expect(keys).toContain("backends[].probe.tls.ca");
  expect(keys).toContain("etcd.prefix");
  expect(keys.length).toBeGreaterThan(40);
});

// Keys under backends[].probe share the probe table, which states that.
test.each(keys.filter((key) => !key.startsWith("backends[].probe.")))("configuration.md documents %s", (key) => {
  expect(DOC).toContain(`| \`${key}\` |`);
});

test("README links the configuration reference", () => {
  expect(readFileSync(join(import.meta.dir, "..", "README.md"), "utf8")).toContain("docs/configuration.md");
});
