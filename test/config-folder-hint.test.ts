import { expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { configFolderHint } from "../src/config-folder-hint.ts";
import { tempDirectory } from "./support/temp-directory.ts";

const directory = tempDirectory("tinylb-config-folder-");
const EXTENSIONS = [".yaml", ".yml", ".json", ".jsonc", ".toml"];

/** Makes a folder with empty files named `names` and returns its path. */
function folderWith(name: string, names: string[]): string {
  const folder = join(directory, name);
  mkdirSync(folder);
  for (const file of names) {
    writeFileSync(join(folder, file), "");
  }

  return folder;
}

test("configFolderHint names the only config file", () => {
  const folder = folderWith("one", ["tinylb.YAML", "README.md", "..data"]);

  expect(configFolderHint(folder, EXTENSIONS)).toBe(`; pass the config file in it: --config ${folder}/tinylb.YAML`);
});

test("configFolderHint names up to three files", () => {
  const folder = folderWith("three", ["c.toml", "a.json", "b.jsonc"]);

  expect(configFolderHint(folder, EXTENSIONS)).toBe(`; pass one of its config files to --config: ${folder}/a.json, ${folder}/b.jsonc or ${folder}/c.toml`);
});

test("configFolderHint names three of many files", () => {
  const folder = folderWith("five", ["e.yaml", "d.yml", "c.yaml", "b.yaml", "a.yaml"]);

  expect(configFolderHint(folder, EXTENSIONS)).toBe(`; pass one of its 5 config files to --config, such as ${folder}/a.yaml, ${folder}/b.yaml or ${folder}/c.yaml`);
});

test("configFolderHint skips hidden files", () => {
  const folder = folderWith("hidden", [".tinylb.yaml", "notes.txt"]);

  expect(configFolderHint(folder, EXTENSIONS)).toBe("; it contains no .yaml, .yml, .json, .jsonc or .toml file, so pass the path of the config file itself to --config");
});

test("configFolderHint returns nothing for a file", () => {
  const folder = folderWith("file-parent", ["tinylb.yaml"]);

  expect(configFolderHint(join(folder, "tinylb.yaml"), EXTENSIONS)).toBe("");
  expect(configFolderHint(join(folder, "missing.yaml"), EXTENSIONS)).toBe("");
});
