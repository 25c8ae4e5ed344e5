/**
 * The balance setting: the `--balance` flag, the `balance` config key, `tinylb check`, a
 * reload and the status output.
 */
import { expect, test } from "bun:test";
import { parseArgs, UsageError } from "../src/cli.ts";
import { ConfigError, loadConfigFile } from "../src/config.ts";
import { resolveSettings } from "../src/settings.ts";
import { formatStatus } from "../src/status-command.ts";
import { configFileWriter } from "./support/config-files.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { reloadFixture } from "./support/reload-fixture.ts";
import { runTinylb } from "./support/tinylb-process.ts";

const configFile = configFileWriter(tempDirectory("tinylb-balance-"));

test("balance defaults to roundrobin", () => {
  expect(resolveSettings(parseArgs(["--listen", "127.0.0.1:0"])).balance).toBe("roundrobin");
});

test("balance flag wins over the file", () => {
  const path = configFile("listen: 127.0.0.1:0\nbalance: roundrobin\n");

  expect(loadConfigFile(path).balance).toBe("roundrobin");
  expect(resolveSettings(parseArgs(["--config", path])).balance).toBe("roundrobin");
  expect(resolveSettings(parseArgs(["--config", path, "--balance", "leastconn"])).balance).toBe("leastconn");
});

test("balance flag rejects an unknown mode", () => {
  const parse = (): unknown => parseArgs(["--listen", "127.0.0.1:0", "--balance", "fewest"]);

  expect(parse).toThrow(UsageError);
  expect(parse).toThrow('--balance "fewest" is not valid; use one of roundrobin, leastconn');
});

test("balance key rejects an unknown mode", () => {
  const path = configFile("listen: 127.0.0.1:0\nbalance: LeastConn\n");

  expect(() => loadConfigFile(path)).toThrow(ConfigError);
  expect(() => loadConfigFile(path)).toThrow(`invalid config ${path}: balance: must be one of "roundrobin", "leastconn" (got "LeastConn")`);
});

test("check rejects an unknown balance mode", async () => {
  const path = configFile("listen: 127.0.0.1:0\nbalance: random\n");

  const fromFile = await runTinylb(["check", "--config", path, "--admin", "off"]);
  expect(fromFile.stderr).toBe(`tinylb: invalid config ${path}: balance: must be one of "roundrobin", "leastconn" (got "random")\n`);
  expect(fromFile.exitCode).toBe(2);

  const fromFlag = await runTinylb(["check", "--listen", "127.0.0.1:0", "--balance", "random", "--admin", "off"]);
  expect(fromFlag.stderr).toBe('tinylb: --balance "random" is not valid; use one of roundrobin, leastconn; see tinylb check --help\n');
  expect(fromFlag.exitCode).toBe(2);

  const valid = await runTinylb(["check", "--listen", "127.0.0.1:0", "--balance", "leastconn", "--admin", "off"]);
  expect(valid.exitCode).toBe(0);
});

test("reload changes balance live", () => {
  const path = configFile("listen: 127.0.0.1:0\n");
  const { settings, server, lines, reload } = reloadFixture(path);

  reload(configFile("listen: 127.0.0.1:0\nbalance: leastconn\n"));
  expect(server.balance).toBe("leastconn");
  expect(settings.balance).toBe("leastconn");
  expect(lines.some((line) => line.includes("settings changed in the config file applied") && line.includes('applied="balance=roundrobin->leastconn"'))).toBe(true);
  expect(lines.some((line) => line.includes("need a restart"))).toBe(false);

  // A key left out goes back to the default.
  reload(path);
  expect(server.balance).toBe("roundrobin");
});

test("reload keeps the balance a flag set", () => {
  const { server, reload } = reloadFixture(configFile("listen: 127.0.0.1:0\n"), ["--balance", "leastconn"]);

  reload(configFile("listen: 127.0.0.1:0\nbalance: roundrobin\n"));
  expect(server.balance).toBe("leastconn");
});

test("formatStatus names the balance mode", () => {
  const base = { listeners: ["127.0.0.1:7443"], backends: [], removed: [], conflicts: [], providers: [], degraded: false, shuttingDown: false };

  expect(formatStatus({ ...base, balance: "leastconn" })).toContain("\nListeners: 127.0.0.1:7443\nBalance: leastconn (new clients go to the backend with the fewest connections open or dialing)\n");
  expect(formatStatus({ ...base, balance: "roundrobin" })).toContain("\nBalance: roundrobin (new clients go to the backends in turn)\n");
  // A balancer from before the setting sends none.
  expect(formatStatus(base)).not.toContain("Balance:");
});
