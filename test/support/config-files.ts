import { writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Returns a function that writes its text to a new YAML config file in `directory`, named
 * `config-N.yaml` with N counting up from 1, and returns the file's path.
 */
export function configFileWriter(directory: string): (text: string) => string {
  let written = 0;

  return (text) => {
    written++;
    const path = join(directory, `config-${written}.yaml`);
    writeFileSync(path, text);

    return path;
  };
}
