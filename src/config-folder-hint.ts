/**
 * The hint for a `--config` path that is a folder, such as a Kubernetes ConfigMap mounted as a
 * volume, which contains one file per key.
 */
import { readdirSync, statSync } from "node:fs";
import { extname, join } from "node:path";
import { joinWords } from "./word-lists.ts";

/** Maximum number of config files that the hint names. */
const MAX_NAMED_FILES = 3;

/**
 * Returns the hint to append to a failed read of the config path `folder`. It names the files
 * in the folder with one of the config `extensions` as the path to pass to --config, or states
 * that there are none. Names that start with a dot are skipped, because a ConfigMap volume keeps
 * its data in hidden folders such as `..data`, beside a symlink per key. Returns "" when
 * `folder` is not a folder.
 */
export function configFolderHint(folder: string, extensions: readonly string[]): string {
  if (!isFolder(folder)) {
    return "";
  }
  const kinds = joinWords(extensions, "or");
  let names: string[];
  try {
    names = readdirSync(folder).filter((name) => !name.startsWith(".") && extensions.includes(extname(name).toLowerCase()));
  } catch {
    return `; pass the path of a ${kinds} file in it to --config`;
  }
  const paths = names.sort().map((name) => join(folder, name));

  if (paths.length === 0) {
    return `; it contains no ${kinds} file, so pass the path of the config file itself to --config`;
  }
  if (paths.length === 1) {
    return `; pass the config file in it: --config ${paths[0]}`;
  }
  if (paths.length <= MAX_NAMED_FILES) {
    return `; pass one of its config files to --config: ${joinWords(paths, "or")}`;
  }

  return `; pass one of its ${paths.length} config files to --config, such as ${joinWords(paths.slice(0, MAX_NAMED_FILES), "or")}`;
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
