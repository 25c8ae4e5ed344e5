import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..");
const PAGES = ["README.md", ...readdirSync(join(ROOT, "docs")).filter((name) => name.endsWith(".md")).map((name) => join("docs", name))];

/**
 * Commands in code blocks and inline code that start with a bare `bun`. `npm install` puts
 * Bun at node_modules/.bin/bun, which is not on PATH outside npm scripts, so such a command
 * fails when pasted into a shell.
 */
function bareBunCommands(text: string): string[] {
  const commands: string[] = [];
  let inBlock = false;
  for (const line of text.split("\n")) {
    if (line.startsWith("```")) {
      inBlock = !inBlock;
      continue;
    }
    if (inBlock && /^\s*bun\s/.test(line)) {
      commands.push(line.trim());
    }
    if (!inBlock) {
      for (const match of line.matchAll(/`(bun [^`]*)`/g)) {
        commands.push(match[1]!);
      }
    }
  }

  return commands;
}

test.each(PAGES)("%s runs Bun through npm or node_modules/.bin", (page) => {
  // Recorded benchmark headers quote the command as the script was started.
  const text = readFileSync(join(ROOT, page), "utf8").replace(/^Run of .*$/gm, "");

  expect(bareBunCommands(text)).toEqual([]);
});
