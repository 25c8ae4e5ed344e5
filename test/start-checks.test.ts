import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "../src/cli.ts";
import { ConfigError } from "../src/config.ts";
import { resolveSettings } from "../src/settings.ts";
import { checkStartSettings, logSettingsWarnings } from "../src/start-checks.ts";
import { LogLines } from "./support/log-lines.ts";
import { tempDirectory } from "./support/temp-directory.ts";

const directory = tempDirectory("tinylb-start-checks-");

/** Resolves the settings of a start with `argv` after a listen address. */
function settingsOf(argv: string[]): ReturnType<typeof resolveSettings> {
  return resolveSettings(parseArgs(["--listen", "127.0.0.1:7443", ...argv]));
}

/** Runs `checkStartSettings` on the command line `argv` after a listen address. */
function checkStart(argv: string[]): ReturnType<typeof checkStartSettings> {
  const cli = parseArgs(["--listen", "127.0.0.1:7443", ...argv]);

  return checkStartSettings(resolveSettings(cli), cli);
}

test("checkStartSettings reads the admin token file", () => {
  const missing = join(directory, "no-token");
  const argv = ["--admin", `unix:${join(directory, "admin.sock")}`, "--admin-token-file", missing];

  expect(() => checkStart(argv)).toThrow(ConfigError);
  expect(() => checkStart(argv)).toThrow(`read admin token file ${missing} failed: the file does not exist`);
});

test("checkStartSettings ignores the token file with the admin API off", () => {
  expect(checkStart(["--admin", "off", "--admin-token-file", join(directory, "no-token")])).toEqual({});
});

test("checkStartSettings accepts a state file in an existing folder", () => {
  expect(() => checkStart(["--admin", "off", "--state-file", join(directory, "state.json")])).not.toThrow();
});

test("checkStartSettings returns the etcd TLS files", () => {
  const path = join(directory, "etcd.yaml");
  const caFile = join(directory, "etcd-ca.pem");
  writeFileSync(caFile, "-----BEGIN CERTIFICATE-----\n");
  writeFileSync(path, `etcd: { endpoints: ["https://127.0.0.1:2379"], prefix: /p/, caFile: ${caFile} }\n`);

  const credentials = checkStart(["--admin", "off", "--config", path]);

  expect(credentials.etcdTls?.caPem).toBe("-----BEGIN CERTIFICATE-----\n");
});

test("logSettingsWarnings is silent without a DNS resolver", () => {
  const log = new LogLines();

  logSettingsWarnings(settingsOf(["--admin", "off", "--dns", "localhost:6443"]), log.logger);

  expect(log.records).toEqual([]);
});

test("logSettingsWarnings warns about a resolver without names", () => {
  const log = new LogLines();

  logSettingsWarnings(settingsOf(["--admin", "off", "--dns-resolver", "127.0.0.1:5353"]), log.logger);

  expect(log.records).toEqual([expect.objectContaining({ level: "warn", component: "main", resolvers: "127.0.0.1:5353" })]);
});
