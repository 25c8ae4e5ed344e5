import { expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { checkConfig, checkSummary } from "../src/check-command.ts";
import { parseArgs } from "../src/cli.ts";
import { ConfigError } from "../src/config.ts";
import { resolveSettings } from "../src/settings.ts";
import { LogLines } from "./support/log-lines.ts";
import { tempDirectory } from "./support/temp-directory.ts";

const directory = tempDirectory("tinylb-check-");

/** Writes a config file into the test folder and returns its path. */
function configFile(name: string, lines: string[]): string {
  const path = join(directory, name);
  writeFileSync(path, lines.join("\n") + "\n");

  return path;
}

const admin = `unix:${join(directory, "admin.sock")}`;

test("checkConfig summarizes a valid file", () => {
  const path = configFile("good.yaml", [
    "listen: [127.0.0.1:7443, '[::1]:7443']",
    "backends:",
    "  - { id: api-1, target: 10.0.0.11:6443 }",
    "  - { id: api-2, target: 10.0.0.12:6443 }",
    "  - { id: api-3, target: 10.0.0.13:6443 }",
  ]);

  const summary = checkConfig(parseArgs(["check", "--config", path, "--admin", admin]), new LogLines().logger);

  expect(summary).toBe(`config OK: 3 backends, 2 listeners (${path})`);
});

test("checkConfig counts flag backends with the file's", () => {
  const path = configFile("one.yaml", ["listen: 127.0.0.1:7443", "backends: [{ id: a, target: 10.0.0.1:1 }]"]);
  const cli = parseArgs(["check", "--config", path, "--backend", "a=10.0.0.9:1", "--backend", "b=10.0.0.2:1", "--admin", "off"]);

  expect(checkConfig(cli, new LogLines().logger)).toBe(`config OK: 2 backends, 1 listener (${path})`);
});

test("checkConfig writes no state file and binds no admin socket", () => {
  const state = join(directory, "state.json");
  const socket = join(directory, "unused-admin.sock");
  const cli = parseArgs(["check", "--listen", "127.0.0.1:7443", "--backend", "a=10.0.0.1:1", "--state-file", state, "--admin", `unix:${socket}`]);

  expect(checkConfig(cli, new LogLines().logger)).toBe("config OK: 1 backend, 1 listener");
  expect(existsSync(state)).toBe(false);
  expect(existsSync(socket)).toBe(false);
});

test("checkConfig logs an unused DNS resolver", () => {
  const log = new LogLines();

  // checkConfig applies the settings' log format, and LogLines parses JSON lines.
  checkConfig(parseArgs(["check", "--listen", "127.0.0.1:7443", "--dns-resolver", "127.0.0.1:5353", "--admin", "off", "--log-format", "json"]), log.logger);

  expect(log.messages()).toEqual([expect.stringContaining("a DNS resolver is set but no DNS name is")]);
});

test("checkConfig rejects an admin folder others can write", () => {
  const folder = join(directory, "open-admin");
  mkdirSync(folder);
  chmodSync(folder, 0o777);
  const cli = parseArgs(["check", "--listen", "127.0.0.1:7443", "--admin", `unix:${join(folder, "admin.sock")}`]);

  expect(() => checkConfig(cli, new LogLines().logger)).toThrow(ConfigError);
  expect(() => checkConfig(cli, new LogLines().logger)).toThrow(
    `invalid admin address unix:${join(folder, "admin.sock")}: the folder ${folder} has mode 0777, so other users can write in it and replace the socket`,
  );
});

test("checkConfig warns about an empty file", () => {
  const path = join(directory, "empty.yaml");
  writeFileSync(path, "\n");
  const log = new LogLines();

  const summary = checkConfig(parseArgs(["check", "--config", path, "--listen", "127.0.0.1:7443", "--admin", "off", "--log-format", "json"]), log.logger);

  expect(summary).toBe(`config OK: 0 backends, 1 listener (${path})`);
  expect(log.messages()).toEqual(["config file is empty: a start serves no backends from it until a good version is saved"]);
});

test("checkConfig takes the log format from the file", () => {
  const path = configFile("text-log.yaml", ["listen: 127.0.0.1:7443", "logFormat: text", "logLevel: error"]);
  const log = new LogLines();

  checkConfig(parseArgs(["check", "--config", path, "--admin", "off"]), log.logger);

  expect(log.logger.format).toBe("text");
  expect(log.logger.level).toBe("error");
});

test.each([
  ["a bad target", ["listen: 127.0.0.1:7443", "backends: [{ id: a, target: nowhere }]"], 'invalid address "nowhere"'],
  ["an unknown key", ["listen: 127.0.0.1:7443", "backend: []"], 'unknown key "backend" (did you mean "backends"?)'],
  ["a YAML syntax error", ["listen: [127.0.0.1:7443", "backends: []"], "failed at line 1"],
  ["a missing probe CA", ["listen: 127.0.0.1:7443", `probe: { kind: https, tls: { ca: ${join(directory, "no-ca.pem")} } }`], `probe.tls.ca: cannot read ${join(directory, "no-ca.pem")}: the file does not exist`],
  ["a probe CA without PEM", ["listen: 127.0.0.1:7443", `probe: { kind: https, tls: { ca: ${join(directory, "good.yaml")} } }`], "contains no PEM block"],
  ["a backend on a listen address", ["listen: 127.0.0.1:7443", "backends: [{ id: a, target: 127.0.0.1:7443 }]"], "which is tinylb's own listen address 127.0.0.1:7443"],
  ["two clashing listen addresses", ["listen: [127.0.0.1:7443, 0.0.0.0:7443]"], "overlaps"],
  ["no listen address", ["backends: [{ id: a, target: 10.0.0.1:1 }]"], "no listen address"],
  ["a missing kubeconfig", ["listen: 127.0.0.1:7443", `kubernetes: { kubeconfig: ${join(directory, "no-kubeconfig")} }`], `kubernetes.kubeconfig: cannot read ${join(directory, "no-kubeconfig")}: the file does not exist`],
  ["a missing etcd CA", ["listen: 127.0.0.1:7443", `etcd: { endpoints: ["https://127.0.0.1:2379"], prefix: /p/, caFile: ${join(directory, "no-etcd-ca.pem")} }`], `etcd.caFile: cannot read ${join(directory, "no-etcd-ca.pem")}: the file does not exist`],
  ["a state file in a missing folder", ["listen: 127.0.0.1:7443", `stateFile: ${join(directory, "missing", "state.json")}`], `the folder ${join(directory, "missing")} does not exist`],
  ["a public admin address", ["listen: 127.0.0.1:7443", "admin: 0.0.0.0:9901"], "admin API address 0.0.0.0:9901 rejected"],
  ["a metrics address on a listen address", ["listen: 127.0.0.1:7443", "metrics: 127.0.0.1:7443"], "metrics 127.0.0.1:7443 is also the listen address"],
  ["a metrics Unix socket", ["listen: 127.0.0.1:7443", "metrics: unix:/run/tinylb/metrics.sock"], "a Unix socket is not allowed"],
  ["a backend on the metrics address", ["listen: 127.0.0.1:7443", "metrics: 127.0.0.1:9100", "backends: [{ id: m, target: 127.0.0.1:9100 }]"], "which is tinylb's own metrics server address 127.0.0.1:9100"],
  ["a backend on the admin socket", ["listen: 127.0.0.1:7443", "admin: unix:/run/tinylb-test/admin.sock", "backends: [{ id: a, target: unix:/run/tinylb-test/admin.sock }]"], "which is tinylb's own admin API address unix:/run/tinylb-test/admin.sock"],
])("checkConfig rejects %s", (name, lines, message) => {
  const path = configFile(`${name.replaceAll(" ", "-")}.yaml`, lines);
  const cli = parseArgs(["check", "--config", path]);

  expect(() => checkConfig(cli, new LogLines().logger)).toThrow(ConfigError);
  expect(() => checkConfig(cli, new LogLines().logger)).toThrow(message);
});

/** Writes a config file with a public admin address and a token file, and `lines`. */
function publicAdminConfig(name: string, lines: string[]): string {
  writeFileSync(join(directory, "token"), "secret-token-of-the-test\n", { mode: 0o600 });

  return configFile(name, ["listen: 127.0.0.1:7443", "admin: 0.0.0.0:9901", `adminTokenFile: ${join(directory, "token")}`, ...lines]);
}

test("--admin-allow-public=false wins over the file", () => {
  const path = publicAdminConfig("allow-public.yaml", ["adminAllowPublic: true"]);

  expect(() => checkConfig(parseArgs(["check", "--config", path]), new LogLines().logger)).not.toThrow();
  expect(() => checkConfig(parseArgs(["check", "--config", path, "--admin-allow-public=false"]), new LogLines().logger)).toThrow("admin API address 0.0.0.0:9901 rejected");
});

test("--no-watch-config=false wins over the file", () => {
  const path = configFile("no-watch.yaml", ["listen: 127.0.0.1:7443", "watchConfig: false"]);

  expect(resolveSettings(parseArgs(["--config", path])).providers.watchConfig).toBe(false);
  expect(resolveSettings(parseArgs(["--config", path, "--no-watch-config=false"])).providers.watchConfig).toBe(true);
});

test("checkSummary names the providers that add backends later", () => {
  const cli = parseArgs(["--listen", "127.0.0.1:7443", "--dns", "localhost:6443", "--admin", "off"]);
  const settings = resolveSettings(cli);
  settings.etcd = { endpoints: ["http://127.0.0.1:2379"], prefix: "/p/" };

  expect(checkSummary(settings)).toBe("config OK: 0 backends, 1 listener, backends also from DNS and etcd");
});

test("checkSummary leaves out the admin API", () => {
  const settings = resolveSettings(parseArgs(["--listen", "127.0.0.1:7443", "--backend", "a=10.0.0.1:1"]));

  expect(checkSummary(settings, "tinylb.yaml")).toBe("config OK: 1 backend, 1 listener (tinylb.yaml)");
});

test("checkSummary names the metrics address", () => {
  const settings = resolveSettings(parseArgs(["--listen", "127.0.0.1:7443", "--backend", "a=10.0.0.1:1", "--metrics", "[::1]:9180"]));

  expect(checkSummary(settings)).toBe("config OK: 1 backend, 1 listener, metrics on [::1]:9180");
});
