import { afterAll } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Makes a new folder in the system's temporary folder, named `prefix` plus six random
 * characters, and removes it with its contents in `afterAll`. At the top level of a test file
 * the folder lasts until the file's last test ends, and in a `describe` block until the block's.
 */
export function tempDirectory(prefix: string): string {
  const directory = mkdtempSync(join(tmpdir(), prefix));
  afterAll(() => rmSync(directory, { recursive: true, force: true }));

  return directory;
}
