/**
 * Config file backend entries that a `--backend` flag with the same id replaces: none of the
 * entry's own keys applies to the flag's backend, at start or on reload.
 */
import { expect, test } from "bun:test";
import { parseArgs } from "../src/cli.ts";
import { loadConfigFile } from "../src/config.ts";
import { flagShadowedIds, flagShadowedKeys, FlagShadowedKeysLog, withoutFlagShadowedKeys } from "../src/flag-shadowed-entries.ts";
import { Logger } from "../src/logger.ts";
import { resolveSettings } from "../src/settings.ts";
import { configFileWriter } from "./support/config-files.ts";
import { reloadFixture } from "./support/reload-fixture.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { TinylbProcess } from "./support/tinylb-process.ts";

const configFile = configFileWriter(tempDirectory("tinylb-flag-shadowed-"));

/** Backends a and b, each with every key a backend entry may have besides `disabled`. */
const ENTRIES = [
  "backends:",
  "  - { id: a, target: 127.0.0.1:9, probe: { kind: tcp, interval: 1s }, proxyProtocol: v1, slowStart: 30s }",
  "  - { id: b, target: 127.0.0.1:10, probe: { kind: tcp, interval: 2s }, proxyProtocol: v2, slowStart: 1m }",
].join("\n");

test("flagShadowedIds lists file ids a flag gives", () => {
  const path = configFile(`listen: 127.0.0.1:0\n${ENTRIES}\n`);
  const cli = parseArgs(["--config", path, "--backend", "c=127.0.0.1:11", "--backend", "a=127.0.0.1:12"]);

  expect(flagShadowedIds(loadConfigFile(path), cli)).toEqual(["a"]);
});

test.each([
  ["another target", "a=127.0.0.1:12"],
  ["the same target", "a=127.0.0.1:9"],
])("flag backend with %s takes no file keys", (_case, flag) => {
  const path = configFile(`listen: 127.0.0.1:0\n${ENTRIES}\n`);

  const settings = resolveSettings(parseArgs(["--config", path, "--backend", flag]));

  expect([...(settings.health.check.probeOverrides?.keys() ?? [])]).toEqual(["b"]);
  expect([...settings.proxyProtocol.byId]).toEqual([["b", "v2"]]);
  expect([...settings.slowStart.byId]).toEqual([["b", 60_000]]);
});

test("shadowed keys are still validated", () => {
  const path = configFile(`listen: 127.0.0.1:0\nbackends:\n  - { id: a, target: 127.0.0.1:9, probe: { interval: 1s } }\n`);

  expect(() => resolveSettings(parseArgs(["--config", path, "--backend", "a=127.0.0.1:12"]))).toThrow(
    "backends[0].probe.interval",
  );
});

test("withoutFlagShadowedKeys keeps the disabled key", () => {
  const path = configFile(`listen: 127.0.0.1:0\nbackends:\n  - { id: a, target: 127.0.0.1:9, disabled: true, slowStart: 5s }\n`);
  const file = loadConfigFile(path);

  const filtered = withoutFlagShadowedKeys(file, parseArgs(["--config", path, "--backend", "a=127.0.0.1:12"]));

  expect(filtered.disabledBackends).toEqual(["a"]);
  expect(filtered.backendSlowStarts?.size).toBe(0);
});

test("reload applies no keys of a shadowed entry", () => {
  const { settings, server, lines, reload } = reloadFixture(configFile("listen: 127.0.0.1:0\n"), ["--backend", "a=127.0.0.1:12"]);

  reload(configFile(`listen: 127.0.0.1:0\n${ENTRIES}\n`));

  expect([...(settings.health.check.probeOverrides?.keys() ?? [])]).toEqual(["b"]);
  expect([...server.proxyProtocol.byId.keys()]).toEqual(["b"]);
  expect([...server.slowStart.settings.byId.keys()]).toEqual(["b"]);
  const applied = lines.find((line) => line.includes("settings changed in the config file applied")) ?? "";
  expect(applied).toContain("proxyProtocol of b=unset->v2");
  expect(applied).not.toContain(" of a=");
});

test("flagShadowedKeys names the ignored keys", () => {
  const path = configFile(`listen: 127.0.0.1:0\n${ENTRIES}\n  - { id: c, target: 127.0.0.1:11, disabled: true }\n`);
  const cli = parseArgs(["--config", path, "--backend", "a=127.0.0.1:12", "--backend", "c=127.0.0.1:13"]);

  expect([...flagShadowedKeys(loadConfigFile(path), cli)]).toEqual([["a", ["probe", "proxyProtocol", "slowStart"]]]);
});

test("shadowed keys warning follows the file", () => {
  const lines: string[] = [];
  const log = new FlagShadowedKeysLog(parseArgs(["--backend", "a=127.0.0.1:12"]), new Logger({ sink: (line) => lines.push(line) }));
  const slowStartOnly = loadConfigFile(configFile("backends:\n  - { id: a, target: 127.0.0.1:9, slowStart: 30s }\n"));
  const warnings = (): string[] => lines.filter((line) => line.includes("backend keys in the config file ignored"));

  log.report(slowStartOnly);
  expect(warnings()).toHaveLength(1);
  expect(warnings()[0]).toContain("backend=a keys=slowStart");

  // The same keys again log nothing, and a new key logs the id with every ignored key.
  log.report(slowStartOnly);
  expect(warnings()).toHaveLength(1);
  log.report(loadConfigFile(configFile("backends:\n  - { id: a, target: 127.0.0.1:9, slowStart: 30s, proxyProtocol: v1 }\n")));
  expect(warnings()).toHaveLength(2);
  expect(warnings()[1]).toContain("backend=a keys=proxyProtocol,slowStart");
});

test("start warns about keys a flag replaces", async () => {
  const path = configFile("listen: 127.0.0.1:0\nbackends:\n  - { id: a, target: 127.0.0.1:9, proxyProtocol: v2 }\n");
  await using tinylb = TinylbProcess.start(["--config", path, "--no-watch-config", "--admin", "off", "--backend", "a=127.0.0.1:12"]);

  await tinylb.waitForLog("tinylb started");

  expect(tinylb.stderr).toMatch(/WARN\s+backend keys in the config file ignored: a --backend flag with the same id replaces the entry; drop the keys, or the flag to use the file's entry .*backend=a keys=proxyProtocol/);
  expect(tinylb.stderr).toContain("proxyProtocol=off");
});
