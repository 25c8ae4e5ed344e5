import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** The repository root, which Markdown paths below are relative to. */
export const ROOT = join(import.meta.dir, "..", "..");

/** The user documentation: README.md and every Markdown page in docs/, as repository paths. */
export const DOC_PAGES = [
  "README.md",
  ...readdirSync(join(ROOT, "docs"))
    .filter((name) => name.endsWith(".md"))
    .sort()
    .map((name) => join("docs", name)),
];

/** Reads a repository file by its path from the root. */
export function readRepoFile(path: string): string {
  return readFileSync(join(ROOT, path), "utf8");
}
