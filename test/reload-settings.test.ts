/**
 * The reload of a config file's settings: the warning about settings that need a restart is
 * logged once per change, on the first reload that finds it.
 */
import { expect, test } from "bun:test";
import { configFileWriter } from "./support/config-files.ts";
import { reloadFixture } from "./support/reload-fixture.ts";
import { tempDirectory } from "./support/temp-directory.ts";

const configFile = configFileWriter(tempDirectory("tinylb-reload-settings-"));

/** Returns the `settings` field of each restart warning in `lines`, in order. */
function restartWarnings(lines: readonly string[]): string[] {
  return lines.filter((line) => line.includes("need a restart")).map((line) => {
    const match = /settings=(?:"([^"]*)"|(\S+))/.exec(line);

    return match?.[1] ?? match?.[2] ?? line;
  });
}

test("restart warning is logged once per change", () => {
  const { lines, reload } = reloadFixture(configFile("listen: 127.0.0.1:0\n"));
  const twoWorkers = configFile("listen: 127.0.0.1:0\nworkers: 2\n");

  reload(twoWorkers);
  expect(restartWarnings(lines)).toEqual(["workers=1->2"]);

  // The same file again: the running value still differs, but the change is known.
  reload(twoWorkers);
  reload(configFile("listen: 127.0.0.1:0\nworkers: 2\n"));
  expect(restartWarnings(lines)).toEqual(["workers=1->2"]);

  // A new value in the file is a new change.
  reload(configFile("listen: 127.0.0.1:0\nworkers: 3\n"));
  expect(restartWarnings(lines)).toEqual(["workers=1->2", "workers=1->3"]);

  // Back to 2 is a change of the file's value again.
  reload(twoWorkers);
  expect(restartWarnings(lines)).toEqual(["workers=1->2", "workers=1->3", "workers=1->2"]);
});

test("restart warning returns after the file matched", () => {
  const { lines, reload } = reloadFixture(configFile("listen: 127.0.0.1:0\n"));
  const twoWorkers = configFile("listen: 127.0.0.1:0\nworkers: 2\n");

  reload(twoWorkers);
  reload(configFile("listen: 127.0.0.1:0\n"));
  reload(twoWorkers);

  expect(restartWarnings(lines)).toEqual(["workers=1->2", "workers=1->2"]);
});

test("restart warning names only the new change", () => {
  const { lines, reload } = reloadFixture(configFile("listen: 127.0.0.1:0\n"));

  reload(configFile("listen: 127.0.0.1:0\nworkers: 2\n"));
  reload(configFile("listen: 127.0.0.1:0\nworkers: 2\nmaxConnections: 10\n"));

  expect(restartWarnings(lines)).toEqual(["workers=1->2", "maxConnections=0->10"]);
});

test("restart list stays while the warning is not repeated", () => {
  const { lines, reload } = reloadFixture(configFile("listen: 127.0.0.1:0\n"));
  const twoWorkers = configFile("listen: 127.0.0.1:0\nworkers: 2\n");

  expect(reload(twoWorkers)).toEqual(["workers"]);
  expect(reload(twoWorkers)).toEqual(["workers"]);
  expect(restartWarnings(lines)).toHaveLength(1);
});
