/**
 * The PROXY protocol setting: the `--proxy-protocol` flag, the `proxyProtocol` and
 * `backends[].proxyProtocol` config keys, `tinylb check`, a reload and the status output.
 */
import { expect, test } from "bun:test";
import { createBackend } from "../src/backend.ts";
import { parseArgs, UsageError } from "../src/cli.ts";
import { ConfigError, loadConfigFile } from "../src/config.ts";
import { proxyProtocolOf } from "../src/proxy-protocol.ts";
import { resolveSettings } from "../src/settings.ts";
import { configFileWriter } from "./support/config-files.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { reloadFixture } from "./support/reload-fixture.ts";
import { runTinylb } from "./support/tinylb-process.ts";

const configFile = configFileWriter(tempDirectory("tinylb-proxy-setting-"));

const BACKENDS = "backends:\n  - id: api-1\n    target: 127.0.0.1:9\n  - id: api-2\n    target: 127.0.0.1:10\n    proxyProtocol: v1\n";

test("proxyProtocol defaults to off", () => {
  const settings = resolveSettings(parseArgs(["--listen", "127.0.0.1:0", "--backend", "api-1=127.0.0.1:9"]));

  expect(settings.proxyProtocol.mode).toBe("off");
  expect(proxyProtocolOf(settings.proxyProtocol, createBackend("api-1", "127.0.0.1:9"))).toBeUndefined();
});

test("backend proxyProtocol wins over flag and file", () => {
  const path = configFile(`listen: 127.0.0.1:0\nproxyProtocol: v2\n${BACKENDS}`);
  const fromFile = resolveSettings(parseArgs(["--config", path])).proxyProtocol;
  const fromFlag = resolveSettings(parseArgs(["--config", path, "--proxy-protocol", "off"])).proxyProtocol;

  expect(proxyProtocolOf(fromFile, createBackend("api-1", "127.0.0.1:9"))).toBe("v2");
  expect(proxyProtocolOf(fromFile, createBackend("api-2", "127.0.0.1:10"))).toBe("v1");
  expect(proxyProtocolOf(fromFlag, createBackend("api-1", "127.0.0.1:9"))).toBeUndefined();
  expect(proxyProtocolOf(fromFlag, createBackend("api-2", "127.0.0.1:10"))).toBe("v1");
});

test("proxyProtocol key rejects an unknown mode", () => {
  const path = configFile("listen: 127.0.0.1:0\nproxyProtocol: send-proxy-v2\n");

  expect(() => loadConfigFile(path)).toThrow(ConfigError);
  expect(() => loadConfigFile(path)).toThrow(`invalid config ${path}: proxyProtocol: must be one of "off", "v1", "v2" (got "send-proxy-v2")`);
});

test("backend proxyProtocol rejects an unknown mode", () => {
  const path = configFile("listen: 127.0.0.1:0\nbackends:\n  - id: api-1\n    target: 127.0.0.1:9\n    proxyProtocol: haproxy\n");

  expect(() => loadConfigFile(path)).toThrow(`invalid config ${path}: backends[0].proxyProtocol (backend "api-1"): must be one of "off", "v1", "v2" (got \"haproxy\")`);
});

test("proxy-protocol flag rejects an unknown mode", () => {
  const parse = (): unknown => parseArgs(["--listen", "127.0.0.1:0", "--proxy-protocol", "on"]);

  expect(parse).toThrow(UsageError);
  expect(parse).toThrow('--proxy-protocol "on" is not valid; use one of off, v1, v2');
});

test("HAProxy's send-proxy suggests the flag", () => {
  expect(() => parseArgs(["--send-proxy-v2"])).toThrow("unknown flag --send-proxy-v2 (did you mean --proxy-protocol v2?)");
});

test("check names the PROXY protocol", async () => {
  const path = configFile(`listen: 127.0.0.1:0\n${BACKENDS}`);

  const result = await runTinylb(["check", "--config", path, "--proxy-protocol", "v2", "--admin", "off"]);
  expect(result.stdout).toBe(`config OK: 2 backends, 1 listener, PROXY protocol v2, api-2=v1 (${path})\n`);
  expect(result.exitCode).toBe(0);
});

test("help describes the proxy-protocol flag", async () => {
  const result = await runTinylb(["--help"]);

  expect(result.stdout).toContain("--proxy-protocol MODE    off, v1 or v2");
});

test("reload changes proxyProtocol live", () => {
  const path = configFile(`listen: 127.0.0.1:0\n${BACKENDS}`);
  const { settings, server, lines, reload } = reloadFixture(path);

  const changed = BACKENDS.replace("proxyProtocol: v1", "proxyProtocol: off");
  reload(configFile(`listen: 127.0.0.1:0\nproxyProtocol: v2\n${changed}`));
  expect(server.proxyProtocol.mode).toBe("v2");
  expect(proxyProtocolOf(server.proxyProtocol, createBackend("api-2", "127.0.0.1:10"))).toBeUndefined();
  expect(settings.proxyProtocol).toBe(server.proxyProtocol);
  expect(lines.some((line) => line.includes('applied="proxyProtocol=off->v2 proxyProtocol of api-2=v1->off"'))).toBe(true);

  // A key left out goes back to the default, and an unchanged file changes nothing.
  reload(configFile("listen: 127.0.0.1:0\n"));
  expect(server.proxyProtocol.mode).toBe("off");
  const count = lines.length;
  reload(configFile("listen: 127.0.0.1:0\n"));
  expect(lines.length).toBe(count);
});

test("reload keeps the proxyProtocol a flag set", () => {
  const { server, reload } = reloadFixture(configFile("listen: 127.0.0.1:0\n"), ["--proxy-protocol", "v1"]);

  reload(configFile("listen: 127.0.0.1:0\nproxyProtocol: v2\n"));
  expect(server.proxyProtocol.mode).toBe("v1");
});
