/**
 * The slow start setting: the `--slow-start` flag, the `slowStart` and `backends[].slowStart`
 * config keys, their errors, `tinylb check`, the help text, a reload and the status output.
 */
import { expect, test } from "bun:test";
import { HELP, parseArgs, UsageError } from "../src/cli.ts";
import { ConfigError, loadConfigFile } from "../src/config.ts";
import { resolveSettings } from "../src/settings.ts";
import { describeSlowStart } from "../src/slow-start-setting.ts";
import { formatStatus } from "../src/status-command.ts";
import { configFileWriter } from "./support/config-files.ts";
import { reloadFixture } from "./support/reload-fixture.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { runTinylb } from "./support/tinylb-process.ts";

/** Writes a new config file in the test folder and returns its path. */
const configFile = configFileWriter(tempDirectory("tinylb-slow-start-setting-"));

test("slow start defaults to off", () => {
  const settings = resolveSettings(parseArgs(["--listen", "127.0.0.1:0"]));

  expect(settings.slowStart.durationMs).toBe(0);
  expect(settings.slowStart.byId.size).toBe(0);
});

test.each([
  ["30s", 30_000],
  ["1s", 1000],
  ["1.5m", 90_000],
  ["off", 0],
  ["Off", 0],
  ["0", 0],
])("slow start flag parses %s", (value, ms) => {
  expect(parseArgs(["--slow-start", value]).slowStartMs).toBe(ms);
  expect(parseArgs([`--slow-start=${value}`]).slowStartMs).toBe(ms);
});

test.each([
  ["500ms", "--slow-start: the slow start 500ms is shorter than the minimum of 1s; use 1s or more, such as 30s, or off (0) to turn slow start off"],
  ["30", '--slow-start: invalid duration "30": use a number and a unit (ms, s, m or h), such as 30s, or off'],
  ["1", '--slow-start: invalid duration "1": use a number and a unit (ms, s, m or h), such as 1s, or off'],
  ["0.5", '--slow-start: invalid duration "0.5": use a number and a unit (ms, s, m or h), such as 3s or 30s, or off'],
  ["slow", '--slow-start: invalid duration "slow": use a number and a unit (ms, s, m or h), such as 3s or 30s, or off'],
  ["25h", '--slow-start: invalid duration "25h": the maximum is 24h, or off'],
])("slow start flag rejects %s", (value, message) => {
  const parse = (): unknown => parseArgs(["--slow-start", value]);

  expect(parse).toThrow(UsageError);
  expect(parse).toThrow(message);
});

test.each([
  ['"45s"', 45_000],
  ["2m", 120_000],
  ["off", 0],
  ["0", 0],
])("slow start key parses %s", (value, ms) => {
  expect(loadConfigFile(configFile(`listen: 127.0.0.1:0\nslowStart: ${value}\n`)).slowStartMs).toBe(ms);
});

test.each([
  ["100ms", "slowStart: the slow start 100ms is shorter than the minimum of 1s; use 1s or more, such as 30s, or off (0) to turn slow start off"],
  ["60", "slowStart: invalid duration 60: add a unit (ms, s, m or h), such as 60s, or use off"],
  ["true", "slowStart: expected a duration such as 30s, or off (got true)"],
  ["soon", 'slowStart: invalid duration "soon": use a number and a unit (ms, s, m or h), such as 3s or 30s, or off'],
])("slow start key rejects %s", (value, message) => {
  const path = configFile(`listen: 127.0.0.1:0\nslowStart: ${value}\n`);

  expect(() => loadConfigFile(path)).toThrow(ConfigError);
  expect(() => loadConfigFile(path)).toThrow(`invalid config ${path}: ${message}`);
});

test("slow start of one backend overrides the top level", () => {
  const path = configFile(
    [
      "listen: 127.0.0.1:0",
      "slowStart: 1m",
      "backends:",
      "  - { id: api-1, target: 127.0.0.1:6443 }",
      "  - { id: api-2, target: 127.0.0.1:6444, slowStart: 5m }",
      "  - { id: api-3, target: 127.0.0.1:6445, slowStart: off }",
    ].join("\n"),
  );

  const settings = resolveSettings(parseArgs(["--config", path]));
  expect(settings.slowStart.durationMs).toBe(60_000);
  expect([...settings.slowStart.byId]).toEqual([
    ["api-2", 300_000],
    ["api-3", 0],
  ]);
  expect(describeSlowStart(settings.slowStart)).toBe("1m, api-2=5m, api-3=off");
  // The flag replaces the top level; a backend's own window still wins for that backend.
  expect(describeSlowStart(resolveSettings(parseArgs(["--config", path, "--slow-start", "off"])).slowStart)).toBe("off, api-2=5m, api-3=off");
});

test("slow start key of one backend rejects a bad window", () => {
  const path = configFile("listen: 127.0.0.1:0\nbackends:\n  - { id: api-1, target: 127.0.0.1:6443, slowStart: 10ms }\n");

  expect(() => loadConfigFile(path)).toThrow(
    `invalid config ${path}: backends[0].slowStart (backend "api-1"): the slow start 10ms is shorter than the minimum of 1s; use 1s or more, such as 30s, or off (0) to turn slow start off`,
  );
});

test("help names the slow start flag", () => {
  expect(HELP).toContain("  --slow-start DUR         give a backend that turns healthy again, is enabled again, or joins\n");
});

test("HAProxy slowstart flag suggests --slow-start", () => {
  expect(() => parseArgs(["--slowstart", "30s"])).toThrow("unknown flag --slowstart (did you mean --slow-start?)");
});

test("check validates slow start", async () => {
  const path = configFile("listen: 127.0.0.1:0\nslowStart: 10ms\n");

  const fromFile = await runTinylb(["check", "--config", path, "--admin", "off"]);
  expect(fromFile.stderr).toBe(`tinylb: invalid config ${path}: slowStart: the slow start 10ms is shorter than the minimum of 1s; use 1s or more, such as 30s, or off (0) to turn slow start off\n`);
  expect(fromFile.exitCode).toBe(2);

  const fromFlag = await runTinylb(["check", "--listen", "127.0.0.1:0", "--slow-start", "10ms", "--admin", "off"]);
  expect(fromFlag.stderr).toBe("tinylb: --slow-start: the slow start 10ms is shorter than the minimum of 1s; use 1s or more, such as 30s, or off (0) to turn slow start off; see tinylb check --help\n");
  expect(fromFlag.exitCode).toBe(2);

  const valid = await runTinylb(["check", "--listen", "127.0.0.1:0", "--slow-start", "30s", "--admin", "off"]);
  expect(valid.stdout).toBe("config OK: 0 backends, 1 listener, slow start 30s\n");
  expect(valid.exitCode).toBe(0);
});

test("reload changes slow start live", () => {
  const path = configFile("listen: 127.0.0.1:0\n");
  const { settings, server, lines, reload } = reloadFixture(path);

  reload(configFile("listen: 127.0.0.1:0\nslowStart: 45s\nbackends:\n  - { id: api-1, target: 127.0.0.1:6443, slowStart: 2m }\n"));
  expect(server.slowStart.settings.durationMs).toBe(45_000);
  expect(describeSlowStart(settings.slowStart)).toBe("45s, api-1=2m");
  expect(lines.some((line) => line.includes("settings changed in the config file applied") && line.includes('applied="slowStart=off->45s slowStart of api-1=unset->2m"'))).toBe(true);
  expect(lines.some((line) => line.includes("need a restart"))).toBe(false);

  // A key left out goes back to the default, off.
  reload(path);
  expect(server.slowStart.settings.durationMs).toBe(0);
  expect(lines.some((line) => line.includes('applied="slowStart=45s->off slowStart of api-1=2m->unset"'))).toBe(true);
});

test("reload keeps the slow start a flag set", () => {
  const { server, reload } = reloadFixture(configFile("listen: 127.0.0.1:0\n"), ["--slow-start", "20s"]);

  reload(configFile("listen: 127.0.0.1:0\nslowStart: off\n"));
  expect(server.slowStart.settings.durationMs).toBe(20_000);
});

test("formatStatus shows slow start", () => {
  const base = { listeners: ["127.0.0.1:7443"], removed: [], conflicts: [], providers: [], degraded: false, shuttingDown: false, balance: "leastconn" as const };
  const backend = { id: "api-2", target: "10.0.0.12:6443", provider: "static", active: 0, total: 0, bytesToBackend: 0, bytesToClient: 0, dialFailures: 0, health: "healthy" as const, healthy: true, healthCause: "", disabled: false };
  const status = { ...base, slowStartMs: 60_000, backends: [{ ...backend, id: "api-1" }, { ...backend, slowStartEndsInMs: 42_300, slowStartWeight: 0.37 }] };

  const text = formatStatus(status);
  expect(text).toContain("\nSlow start: 1m for each backend that returns (--slow-start, slowStart)\n");
  expect(text).toContain('\nSlow start: "api-2" gets 37% of a full share of new clients, a full share in 43s\n');
  expect(text).not.toContain('"api-1" gets');
  // Off, or a balancer from before the setting: no slow start line.
  expect(formatStatus({ ...base, slowStartMs: 0, backends: [backend] })).not.toContain("Slow start");
  expect(formatStatus({ ...base, backends: [backend] })).not.toContain("Slow start");
});

test("formatStatus names the backends whose own slow start differs from the balancer's", () => {
  const base = { listeners: ["127.0.0.1:7443"], removed: [], conflicts: [], providers: [], degraded: false, shuttingDown: false };
  const backend = { id: "api-1", target: "10.0.0.11:6443", provider: "static", active: 0, total: 0, bytesToBackend: 0, bytesToClient: 0, dialFailures: 0, health: "healthy" as const, healthy: true, healthCause: "", disabled: false };
  const backends = [
    { ...backend, slowStartMs: 30_000 },
    { ...backend, id: "api-2", slowStartMs: 0 },
    { ...backend, id: "api-3", slowStartMs: 60_000 },
  ];

  expect(formatStatus({ ...base, slowStartMs: 30_000, backends })).toContain(
    '\nSlow start: 30s for each backend that returns (--slow-start, slowStart); its own (backends[].slowStart): "api-2" off, "api-3" 1m\n',
  );
  // Off for the balancer, on for one backend: the line names only that backend.
  const onlyOne = backends.map((entry) => ({ ...entry, slowStartMs: entry.id === "api-3" ? 60_000 : 0 }));
  expect(formatStatus({ ...base, slowStartMs: 0, backends: onlyOne })).toContain('\nSlow start: only for "api-3" 1m when it returns (backends[].slowStart)\n');
});
