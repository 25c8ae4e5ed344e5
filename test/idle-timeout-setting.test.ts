/**
 * The idle timeout setting: the `--idle-timeout` flag, the `idleTimeout` config key, their
 * errors, `tinylb check`, the help text and a reload.
 */
import { expect, test } from "bun:test";
import { HELP, parseArgs, UsageError } from "../src/cli.ts";
import { ConfigError, loadConfigFile } from "../src/config.ts";
import { resolveSettings } from "../src/settings.ts";
import { configFileWriter } from "./support/config-files.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { reloadFixture } from "./support/reload-fixture.ts";
import { runTinylb } from "./support/tinylb-process.ts";

/** Writes a new config file in the test folder and returns its path. */
const configFile = configFileWriter(tempDirectory("tinylb-idle-setting-"));

test("idle timeout defaults to off", () => {
  const settings = resolveSettings(parseArgs(["--listen", "127.0.0.1:0"]));

  expect(settings.idleTimeoutMs).toBe(0);
});

test.each([
  ["30s", 30_000],
  ["1s", 1000],
  ["1000ms", 1000],
  ["1.5s", 1500],
  ["10m", 600_000],
  ["off", 0],
  ["OFF", 0],
  ["0", 0],
])("idle timeout flag parses %s", (value, ms) => {
  expect(parseArgs(["--idle-timeout", value]).idleTimeoutMs).toBe(ms);
  expect(parseArgs([`--idle-timeout=${value}`]).idleTimeoutMs).toBe(ms);
});

test.each([
  ["999ms", "--idle-timeout: the idle timeout 999ms is shorter than the minimum of 1s; use 1s or more, or off (0) to keep idle connections open"],
  ["30", '--idle-timeout: invalid duration "30": use a number and a unit (ms, s, m or h), such as 30s, or off'],
  ["never", '--idle-timeout: invalid duration "never": use a number and a unit (ms, s, m or h), such as 3s or 30s, or off'],
  ["25h", '--idle-timeout: invalid duration "25h": the maximum is 24h, or off'],
])("idle timeout flag rejects %s", (value, message) => {
  const parse = (): unknown => parseArgs(["--idle-timeout", value]);

  expect(parse).toThrow(UsageError);
  expect(parse).toThrow(message);
});

test.each([
  ['"45s"', 45_000],
  ["off", 0],
  ["0", 0],
])("idle timeout key parses %s", (value, ms) => {
  expect(loadConfigFile(configFile(`listen: 127.0.0.1:0\nidleTimeout: ${value}\n`)).idleTimeoutMs).toBe(ms);
});

test.each([
  ["500ms", 'idleTimeout: the idle timeout 500ms is shorter than the minimum of 1s; use 1s or more, or off (0) to keep idle connections open'],
  ["30", "idleTimeout: invalid duration 30: add a unit (ms, s, m or h), such as 30s, or use off"],
  ["true", "idleTimeout: expected a duration such as 30s, or off (got true)"],
  ["[30s]", 'idleTimeout: expected a duration such as 30s, or off (got a list: ["30s"])'],
])("idle timeout key rejects %s", (value, message) => {
  const path = configFile(`listen: 127.0.0.1:0\nidleTimeout: ${value}\n`);

  expect(() => loadConfigFile(path)).toThrow(ConfigError);
  expect(() => loadConfigFile(path)).toThrow(`invalid config ${path}: ${message}`);
});

test("idle timeout flag wins over the file", () => {
  const path = configFile("listen: 127.0.0.1:0\nidleTimeout: 30s\n");

  expect(resolveSettings(parseArgs(["--config", path])).idleTimeoutMs).toBe(30_000);
  expect(resolveSettings(parseArgs(["--config", path, "--idle-timeout", "off"])).idleTimeoutMs).toBe(0);
});

test("help names the idle timeout flag", () => {
  expect(HELP).toContain("  --idle-timeout DUR       reset a connection that carries no byte in either direction for\n");
});

test("HAProxy timeout flags suggest --idle-timeout", () => {
  expect(() => parseArgs(["--timeout-client", "30s"])).toThrow("unknown flag --timeout-client (did you mean --idle-timeout?)");
  expect(() => parseArgs(["--timeout-server", "30s"])).toThrow("unknown flag --timeout-server (did you mean --idle-timeout?)");
});

test("check rejects a short idle timeout", async () => {
  const path = configFile("listen: 127.0.0.1:0\nidleTimeout: 100ms\n");

  const fromFile = await runTinylb(["check", "--config", path, "--admin", "off"]);
  expect(fromFile.stderr).toBe(`tinylb: invalid config ${path}: idleTimeout: the idle timeout 100ms is shorter than the minimum of 1s; use 1s or more, or off (0) to keep idle connections open\n`);
  expect(fromFile.exitCode).toBe(2);

  const fromFlag = await runTinylb(["check", "--listen", "127.0.0.1:0", "--idle-timeout", "100ms", "--admin", "off"]);
  expect(fromFlag.stderr).toBe("tinylb: --idle-timeout: the idle timeout 100ms is shorter than the minimum of 1s; use 1s or more, or off (0) to keep idle connections open; see tinylb check --help\n");
  expect(fromFlag.exitCode).toBe(2);

  const valid = await runTinylb(["check", "--listen", "127.0.0.1:0", "--idle-timeout", "2s", "--admin", "off"]);
  expect(valid.stdout).toBe("config OK: 0 backends, 1 listener\n");
  expect(valid.exitCode).toBe(0);
});

test("reload changes the idle timeout live", async () => {
  const path = configFile("listen: 127.0.0.1:0\n");
  const { settings, server, lines, reload } = reloadFixture(path);

  try {
    reload(configFile("listen: 127.0.0.1:0\nidleTimeout: 2m\n"));
    expect(server.idleTimeoutMs).toBe(120_000);
    expect(settings.idleTimeoutMs).toBe(120_000);
    expect(lines.some((line) => line.includes("settings changed in the config file applied") && line.includes('applied="idleTimeout=off->2m"'))).toBe(true);
    expect(lines.some((line) => line.includes("need a restart"))).toBe(false);

    // A key left out goes back to the default, off.
    reload(path);
    expect(server.idleTimeoutMs).toBe(0);
    expect(lines.some((line) => line.includes('applied="idleTimeout=2m->off"'))).toBe(true);
  } finally {
    await server.shutdown(0);
  }
});

test("reload keeps the idle timeout a flag set", async () => {
  const { server, reload } = reloadFixture(configFile("listen: 127.0.0.1:0\nidleTimeout: 5s\n"), ["--idle-timeout", "10s"]);

  try {
    reload(configFile("listen: 127.0.0.1:0\nidleTimeout: off\n"));
    expect(server.idleTimeoutMs).toBe(10_000);
  } finally {
    await server.shutdown(0);
  }
});
