import { expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs, UsageError } from "../src/cli.ts";
import { ConfigError, validateConfig } from "../src/config.ts";
import { checkProbeConfig } from "../src/probe-config-check.ts";
import { HttpBackend } from "./support/http-backend.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { TinylbProcess } from "./support/tinylb-process.ts";

const FILE = "/etc/tinylb/tinylb.yaml";
const dir = tempDirectory("tinylb-probe-check-");

const PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const ca = join(dir, "ca.crt");
writeFileSync(ca, PEM);
const token = join(dir, "token");
writeFileSync(token, "probe-token-0123456789\n");
const emptyToken = join(dir, "empty-token");
writeFileSync(emptyToken, "\n");
const notPem = join(dir, "not-pem.crt");
writeFileSync(notPem, "hello\n");
const folder = join(dir, "folder");
mkdirSync(folder);
const absent = join(dir, "absent.crt");

/** Validates `data` as a config file and runs the probe check on it, with `flags` as the command line. */
function check(data: unknown, flags: string[] = []): void {
  const file = validateConfig(FILE, data);
  checkProbeConfig(parseArgs(["--listen", "127.0.0.1:0", ...flags]).health, file.health, FILE);
}

test.each([
  [{ probe: { kind: "https", tls: { ca: absent } } }, `probe.tls.ca: cannot read ${absent}: the file does not exist`],
  [{ probe: { kind: "https", tls: { ca: folder } } }, `probe.tls.ca: cannot read ${folder}: it is a folder, not a file`],
  [{ probe: { kind: "https", tls: { ca: notPem } } }, `probe.tls.ca: ${notPem} contains no PEM block (a line such as -----BEGIN CERTIFICATE-----)`],
  [{ probe: { kind: "http", bearerTokenFile: emptyToken } }, `probe.bearerTokenFile: ${emptyToken} must contain the token on one line`],
  [{ probe: { kind: "https", tls: { ca: "absent-relative.crt" } } }, `probe.tls.ca: cannot read absent-relative.crt (relative to the working folder ${process.cwd()}): the file does not exist`],
  [
    { probe: { kind: "https" }, backends: [{ id: "a", target: "127.0.0.1:1" }, { id: "b", target: "127.0.0.1:2", probe: { tls: { cert: absent, key: ca } } }] },
    `backends[1].probe.tls.cert (backend "b"): cannot read ${absent}: the file does not exist`,
  ],
  [{ probe: { kind: "tcp", expectStatus: 204 } }, "probe.expectStatus applies to http and https probes only, but the probe kind is tcp; remove it or change the kind"],
  [{ probe: { kind: "tcp", path: "/readyz" } }, "probe.path applies to http and https probes only, but the probe kind is tcp"],
  [{ probe: { kind: "http", tls: { ca } } }, "probe.tls applies to https probes only, but the probe kind is http"],
  [
    { probe: { kind: "http", interval: "1s", timeout: "5s" } },
    "the probe timeout 5s (probe.timeout) is longer than its interval 1s (probe.interval); use a timeout of at most the interval",
  ],
  [{ probe: { kind: "http", timeout: "6s" } }, "the probe timeout 6s (probe.timeout) is longer than its interval 5s (the default)"],
  [
    { backends: [{ id: "a", target: "127.0.0.1:1", probe: { kind: "tcp", interval: "1s", timeout: "3s" } }] },
    'backends[0].probe (backend "a"): the probe timeout 3s (backends[0].probe.timeout) is longer than its interval 1s (backends[0].probe.interval)',
  ],
  [
    { probe: { kind: "tcp", interval: "1s" }, backends: [{ id: "a", target: "127.0.0.1:1" }, { id: "api-2", target: "127.0.0.1:2", probe: { timeout: "2s" } }] },
    'backends[1].probe (backend "api-2"): the probe timeout 2s (backends[1].probe.timeout) is longer than its interval 1s (probe.interval)',
  ],
  [
    { backends: [{ id: "api-2", target: "127.0.0.1:1", probe: { kind: "tcp", path: "/readyz" } }] },
    'backends[0].probe.path (backend "api-2") applies to http and https probes only, but the probe kind is tcp',
  ],
])("probe check rejects %j", (data, message) => {
  expect(() => check(data)).toThrow(ConfigError);
  expect(() => check(data)).toThrow(`invalid config ${FILE}: ${message}`);
});

test.each([
  [{ probe: { timeout: "9s" } }, "probe.timeout is set, but no probe runs without a probe kind; set probe.kind to tcp, http or https, or remove it"],
  [
    { probe: { interval: "1s" }, backends: [{ id: "a", target: "127.0.0.1:1", probe: { path: "/readyz", timeout: "1s" } }] },
    "probe.interval is set, but no probe runs without a probe kind; set probe.kind to tcp, http or https, or remove it; " +
      'backends[0].probe.timeout, backends[0].probe.path (backend "a") are set, but no probe runs without a probe kind; set backends[0].probe.kind or probe.kind to http or https, or remove them',
  ],
  [
    { backends: [{ id: "api-2", target: "127.0.0.1:1", probe: { rise: 3 } }] },
    'backends[0].probe.rise (backend "api-2") is set, but no probe runs without a probe kind; set backends[0].probe.kind or probe.kind to tcp, http or https, or remove it',
  ],
  [{ drainTimeout: "5s" }, "drainTimeout applies only when removed targets drain, but the removal policy is close; set onRemoval to drain, or remove drainTimeout"],
])("probe check rejects settings that do nothing: %j", (data, message) => {
  expect(() => check(data)).toThrow(ConfigError);
  expect(() => check(data)).toThrow(`invalid config ${FILE}: ${message}`);
});

test.each([
  [["--probe-path", "/readyz"], "--probe-path is set, but no probe runs without a probe kind; add --probe http or --probe https, or remove it"],
  [["--probe-timeout", "1s"], "--probe-timeout is set, but no probe runs without a probe kind; add --probe tcp, --probe http or --probe https, or remove it"],
  [["--drain-timeout", "5s"], "--drain-timeout applies only when removed targets drain, but the removal policy is close; add --on-removal drain, or remove --drain-timeout"],
])("flags without their mode are rejected: %p", (flags, message) => {
  const health = parseArgs(["--listen", "127.0.0.1:0", ...flags]).health;

  expect(() => checkProbeConfig(health, undefined)).toThrow(`invalid health settings: ${message}`);
});

test("probe check names the flag", () => {
  expect(() => check({}, ["--probe", "https", "--probe-ca", absent])).toThrow(`--probe-ca: cannot read ${absent}: the file does not exist`);
  expect(() => check({}, ["--probe", "tcp", "--probe-path", "/readyz"])).toThrow("--probe-path applies to http and https probes only");
  expect(() => check({}, ["--probe", "http", "--probe-ca", ca])).toThrow("--probe-ca applies to https probes only, but the probe kind is http");
  expect(() => check({}, ["--probe", "tcp", "--probe-server-name", "kubernetes"])).toThrow("--probe-server-name applies to https probes only");
  expect(() => check({ probe: { interval: "1s" } }, ["--probe", "http", "--probe-timeout", "3s"])).toThrow(
    "the probe timeout 3s (--probe-timeout) is longer than its interval 1s (probe.interval)",
  );
});

test("probe check accepts readable files", () => {
  expect(() => check({ probe: { kind: "https", tls: { ca }, bearerTokenFile: token, interval: "1s", timeout: "1s" } })).not.toThrow();
  // A backend may switch to a tcp probe without clearing the balancer's http fields.
  expect(() => check({ probe: { kind: "https", path: "/readyz", tls: { ca } }, backends: [{ id: "a", target: "127.0.0.1:1", probe: { kind: "tcp" } }] })).not.toThrow();
  // A backend that sets a kind uses the balancer's timing.
  expect(() => check({ probe: { interval: "1s" }, backends: [{ id: "a", target: "127.0.0.1:1", probe: { kind: "tcp" } }] })).not.toThrow();
  expect(() => check({ onRemoval: "drain", drainTimeout: "5s" })).not.toThrow();
});

test("probe check accepts the default timeout", () => {
  expect(() => check({ probe: { kind: "tcp", interval: "100ms" } })).not.toThrow();
});

test.each([
  [{ probe: { interval: "10ms" } }, "probe.interval: use an interval of at least 100ms, such as 5s"],
  [{ probe: { timeout: "5ms" } }, "probe.timeout: use a timeout of at least 10ms, such as 2s"],
])("config rejects short probe timing %j", (data, message) => {
  expect(() => validateConfig(FILE, data)).toThrow(message);
});

test.each([
  [["--probe-interval", "10ms"], "--probe-interval: 10ms is too short; use at least 100ms"],
  [["--probe-timeout", "1ms"], "--probe-timeout: 1ms is too short; use at least 10ms"],
])("flags reject short probe timing %p", (args, message) => {
  expect(() => parseArgs(args)).toThrow(UsageError);
  expect(() => parseArgs(args)).toThrow(message);
});

test("tinylb exits 2 on a missing probe CA", async () => {
  const config = join(dir, "missing-ca.yaml");
  writeFileSync(config, ["listen: 127.0.0.1:0", "probe: { kind: https }", "backends:", "  - { id: a, target: 127.0.0.1:1, probe: { tls: { ca: " + absent + " } } }"].join("\n"));
  await using tinylb = TinylbProcess.start(["--config", config]);

  expect(await tinylb.process.exited).toBe(2);
  expect(tinylb.stderr).toContain(`invalid config ${config}: backends[0].probe.tls.ca (backend "a"): cannot read ${absent}: the file does not exist`);
});

test("tinylb exits 2 on a probe path without a kind", async () => {
  await using tinylb = TinylbProcess.start(["--listen", "127.0.0.1:0", "--backend", "a=127.0.0.1:1", "--probe-path", "/readyz"]);

  expect(await tinylb.process.exited).toBe(2);
  expect(tinylb.stderr).toContain("invalid health settings: --probe-path is set, but no probe runs without a probe kind; add --probe http or --probe https, or remove it");
});

test("tinylb keeps the last good probe on a bad reload", async () => {
  const backend = new HttpBackend("a");
  try {
    const config = join(dir, "reload.yaml");
    const write = (tokenFile: string): void =>
      writeFileSync(
        config,
        ["listen: 127.0.0.1:0", `probe: { kind: http, path: /readyz, interval: 100ms, rise: 1, fall: 1, bearerTokenFile: ${tokenFile} }`, "backends:", `  - { id: a, target: "${backend.target}" }`].join("\n"),
      );
    write(token);
    await using tinylb = TinylbProcess.start(["--config", config, "--no-watch-config"]);
    await tinylb.waitForLog("config loaded");

    write(join(dir, "absent-token"));
    tinylb.signal("SIGHUP");

    await tinylb.waitForLog("config reload rejected");
    expect(tinylb.stderr).toContain(`probe.bearerTokenFile: cannot read ${join(dir, "absent-token")}: the file does not exist`);
    expect(tinylb.stderr).not.toContain("backend is unhealthy");

    // The old probe still runs: it sees /readyz fail, where the rejected one could not read its token.
    backend.readyStatus = 503;
    await tinylb.waitForLog(/backend is unhealthy .*backend=a .*returned status 503/);
    expect(tinylb.process.exitCode).toBeNull();
  } finally {
    backend.stop();
  }
});
