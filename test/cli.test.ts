import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { HELP, parseArgs, UsageError } from "../src/cli.ts";
import { ConfigError } from "../src/config.ts";
import { resolveSettings } from "../src/settings.ts";
import { tempDirectory } from "./support/temp-directory.ts";

function usageError(argv: string[]): UsageError {
  try {
    parseArgs(argv);
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);

    return error as UsageError;
  }
  throw new Error(`expected ${argv.join(" ")} to be rejected`);
}

describe("parseArgs", () => {
  test("reads listeners, backends and timeouts", () => {
    const options = parseArgs([
      "--listen",
      "127.0.0.1:7443",
      "--listen=[::1]:0",
      "--listen",
      "unix:/run/tinylb.sock",
      "--backend",
      "api-1=10.0.0.11:6443",
      "--backend=api-2=[fd00::2]:6443",
      "--connect-timeout",
      "500ms",
      "--keepalive=0",
      "--shutdown-grace",
      "1m",
      "--log-level",
      "debug",
      "--log-format=json",
    ]);

    expect(options.command).toBe("run");
    expect(options.listen).toEqual([
      { kind: "tcp", host: "127.0.0.1", port: 7443 },
      { kind: "tcp", host: "::1", port: 0 },
      { kind: "unix", path: "/run/tinylb.sock" },
    ]);
    expect(options.backends.map((backend) => `${backend.id}=${backend.target}`)).toEqual(["api-1=10.0.0.11:6443", "api-2=[fd00::2]:6443"]);
    expect(options.connectTimeoutMs).toBe(500);
    expect(options.keepaliveMs).toBe(0);
    expect(options.shutdownGraceMs).toBe(60_000);
    expect(options.logLevel).toBe("debug");
    expect(options.logFormat).toBe("json");
  });

  test.each([
    [["status", "--json"], { json: true, providers: {} }],
    [["status", "--json=true"], { json: true, providers: {} }],
    [["status", "--json=false"], { json: false, providers: {} }],
    [["status", "--json", "--json=false"], { json: false, providers: {} }],
    [["--no-watch-config=True"], { json: undefined, providers: { watchConfig: false } }],
    [["--no-watch-config=false"], { json: undefined, providers: { watchConfig: true } }],
    [["--admin-allow-public=false"], { json: undefined, providers: { adminAllowPublic: false } }],
  ])("switch %p sets %p", (argv, expected) => {
    const options = parseArgs(argv);

    expect(options.json).toBe(expected.json);
    expect(options.providers).toEqual(expected.providers);
  });

  test.each([
    [["--help"], "help"],
    [["--help=true"], "help"],
    [["--version=TRUE"], "version"],
    [["check", "--help=false", "--listen", "127.0.0.1:1"], "check"],
    [["-h"], "help"],
    [["--version"], "version"],
    [["-V"], "version"],
    [["demo"], "demo"],
    [["demo", "--listen", "127.0.0.1:0"], "demo"],
    [["--listen", "127.0.0.1:1", "--help"], "help"],
    [["status", "--help"], "help"],
    [["status", "--admin", "unix:/tmp/a.sock", "-h"], "help"],
    [["check", "--config", "tinylb.yaml"], "check"],
    [["check", "--listen", "127.0.0.1:1", "--backend", "a=127.0.0.1:2", "--probe", "tcp"], "check"],
    [["check", "--help"], "help"],
  ])("%p selects the %p command", (argv, command) => {
    expect(parseArgs(argv).command).toBe(command as ReturnType<typeof parseArgs>["command"]);
  });

  test("keepalive accepts whole seconds in any unit", () => {
    expect(parseArgs(["--keepalive", "1.5m"]).keepaliveMs).toBe(90_000);
    expect(parseArgs(["--keepalive", "1000ms"]).keepaliveMs).toBe(1000);
  });

  test("status --help selects the status help", () => {
    expect(parseArgs(["status", "--help"]).helpFor).toBe("status");
    expect(parseArgs(["--help"]).helpFor).toBeUndefined();
    expect(parseArgs(["demo", "--help"]).helpFor).toBeUndefined();
  });

  test("demo reads --admin", () => {
    expect(parseArgs(["demo", "--admin", "unix:/tmp/demo.sock"]).providers?.admin).toEqual({ kind: "unix", path: "/tmp/demo.sock" });
    expect(parseArgs(["demo", "--admin", "off"]).providers?.admin).toBe("off");
  });

  test("check --help selects the check help", () => {
    expect(parseArgs(["check", "--config", "tinylb.yaml", "-h"]).helpFor).toBe("check");
  });

  test("check reads the flags of a start", () => {
    const options = parseArgs(["check", "--config", "tinylb.yaml", "--listen", "127.0.0.1:7443", "--backend", "a=10.0.0.1:1", "--admin", "off", "--connect-timeout", "2s"]);

    expect(options.configPath).toBe("tinylb.yaml");
    expect(options.listen).toEqual([{ kind: "tcp", host: "127.0.0.1", port: 7443 }]);
    expect(options.backends.map((backend) => backend.id)).toEqual(["a"]);
    expect(options.providers?.admin).toBe("off");
    expect(options.connectTimeoutMs).toBe(2000);
  });

  test.each([
    [["--lisen", "127.0.0.1:1"], "unknown flag --lisen"],
    [["extra"], 'unknown command "extra" (the commands are add, check, config, demo, disable, enable, remove and status)'],
    [["remvoe", "a"], 'unknown command "remvoe" (did you mean remove?)'],
    [["ad", "a", "127.0.0.1:9"], 'unknown command "ad" (did you mean add?)'],
    [["chek"], 'unknown command "chek" (did you mean check?)'],
    [["check", "--lisen", "127.0.0.1:1"], "unknown flag --lisen (did you mean --listen?)"],
    [["check", "--config", "tinylb.yaml", "extra"], 'unexpected argument "extra"'],
    [["check", "--backend", "10.0.0.1:6443"], '--backend "10.0.0.1:6443": expected ID=TARGET'],
    [["--listen", "127.0.0.1:1", "extra"], 'unexpected argument "extra"'],
    [["--admin", "unix:/run/x.sock", "status"], 'unexpected argument "status": put the command before the options, as in tinylb status [options]'],
    [["--admin", "unix:/run/x.sock", "add"], 'unexpected argument "add": put the command before the options, as in tinylb add ID TARGET [options]'],
    [["--lisen", "127.0.0.1:1"], "unknown flag --lisen (did you mean --listen?)"],
    [["--maxconn", "100"], "unknown flag --maxconn (did you mean --max-connections?)"],
    [["--nbthread", "2"], "unknown flag --nbthread (did you mean --workers?)"],
    [["--connect-timeout", "--admin", "off"], "--connect-timeout needs a value"],
    [["--keepalive", "999ms"], '--keepalive: the keepalive time must be 0 (off) or at least 1s, since the kernel counts it in whole seconds (got "999ms")'],
    [["--keepalive", "1500ms"], "--keepalive: the keepalive time 1500ms is not a whole number of seconds, but the kernel counts whole seconds; use 1s or 2s"],
    [["--keepalive", "2.5s"], '--keepalive: the keepalive time 2500ms is not a whole number of seconds, but the kernel counts whole seconds; use 2s or 3s (got "2.5s")'],
    [["--keepalive", "10h"], "--keepalive: the keepalive time 10h is longer than Linux allows (32767s, about 9 hours); use at most 32767s, or 0 to turn keepalive off"],
    [["demo", "--json"], "--json is not valid with tinylb demo"],
    [["status", "--json=yes"], '--json is a switch: write --json, --json=true or --json=false (got "yes")'],
    [["--no-watch-config="], '--no-watch-config is a switch: write --no-watch-config, --no-watch-config=true or --no-watch-config=false (got "")'],
    [["--help=x"], '--help is a switch: write --help, --help=true or --help=false (got "x")'],
    [["--version=yes"], '--version is a switch: write --version, --version=true or --version=false (got "yes")'],
    [["check", "--listen", "127.0.0.1:1", "--json"], "--json is valid only with tinylb status and tinylb config"],
    [["--json=false"], "--json is valid only with tinylb status and tinylb config"],
    [["demo", "--admin-token-file", "token"], "--admin-token-file is not valid with tinylb demo, which takes only --listen ADDR and --admin ADDR"],
    [["--listen"], "--listen needs a value"],
    [["--listen", "127.0.0.1"], '--listen: invalid address "127.0.0.1": expected host:port, [ipv6]:port or unix:/path'],
    [["--backend", "10.0.0.1:6443"], '--backend "10.0.0.1:6443": expected ID=TARGET, such as api-1=10.0.0.1:6443'],
    [["--backend", "=10.0.0.1:6443"], "expected ID=TARGET"],
    [["--backend", "a=10.0.0.1:0"], '--backend: invalid target for backend "a": invalid address "10.0.0.1:0"'],
    [["--backend", "a b=10.0.0.1:1"], '--backend: invalid backend id "a b"'],
    [["--connect-timeout", "3"], '--connect-timeout: invalid duration "3": use a number and a unit'],
    [["--connect-timeout", "0"], '--connect-timeout: the duration must be at least 1 ms (got "0")'],
    [["--shutdown-grace", "2d"], '--shutdown-grace: invalid duration "2d"'],
    [["--log-level", "loud"], '--log-level "loud" is not valid; use one of debug, info, warn, error'],
    [["--log-format", "xml"], '--log-format "xml" is not valid; use one of text, json'],
    [["--config="], "--config needs a file path"],
  ])("rejects %p", (argv, message) => {
    const error = usageError(argv);

    expect(error.message).toContain(message);
    expect(error.message).not.toContain("\n");
  });

  // Every flag that checks its value, with a value that no message contains by chance.
  test.each([
    ["--listen", "7443"],
    ["--backend", "web"],
    ["--connect-timeout", "0ms"],
    ["--keepalive", "999ms"],
    ["--shutdown-grace", "10"],
    ["--idle-timeout", "500ms"],
    ["--max-connections", "1.5"],
    ["--max-connections-per-backend", "-7"],
    ["--workers", "257"],
    ["--balance", "2"],
    ["--proxy-protocol", "2"],
    ["--log-level", "7"],
    ["--log-format", "1"],
    ["--probe", "2"],
    ["--probe-path", "readyz"],
    ["--probe-interval", "0ms"],
    ["--probe-timeout", "5ms"],
    ["--max-attempts", "10001"],
    ["--on-removal", "1"],
    ["--drain-timeout", "0ms"],
    ["--on-unhealthy", "0"],
    ["--admin", "9901"],
    ["--metrics", "9180"],
    ["--dns", "api.internal"],
    ["--dns-srv", "-srv"],
    ["--dns-resolver", "resolver.internal"],
    ["--dns-interval", "500ms"],
  ])("rejects %s %p naming the value", (flag, value) => {
    const error = usageError(["--listen", "127.0.0.1:7443", flag, value]);

    expect(error.message).toStartWith(flag);
    expect(error.message).toContain(value);
  });
});

describe("HELP", () => {
  test("documents every core flag and which source wins", () => {
    for (const flag of ["--listen", "--backend", "--config", "--connect-timeout", "--keepalive", "--shutdown-grace", "--log-level", "--log-format", "--help", "--version"]) {
      expect(HELP).toContain(flag);
    }
    expect(HELP).toContain("a flag wins over the same setting in the file");
  });
});

describe("resolveSettings", () => {
  const directory = tempDirectory("tinylb-cli-");
  const configPath = join(directory, "tinylb.yaml");
  writeFileSync(
    configPath,
    ["listen: 127.0.0.1:7443", "backends:", "  - { id: a, target: 127.0.0.1:1 }", "  - { id: b, target: 127.0.0.1:2 }", "connectTimeout: 1s", "shutdownGrace: 5s", ""].join("\n"),
  );

  test("applies defaults without a file", () => {
    const settings = resolveSettings(parseArgs(["--listen", "127.0.0.1:0", "--backend", "a=127.0.0.1:1"]));

    expect(settings.connectTimeoutMs).toBe(3000);
    expect(settings.keepaliveMs).toBe(30_000);
    expect(settings.shutdownGraceMs).toBe(10_000);
    expect(settings.logLevel).toBe("info");
    expect(settings.logFormat).toBe("text");
    expect(settings.backends.describe()).toBe("a=127.0.0.1:1");
  });

  test("lets flags win over the file", () => {
    const settings = resolveSettings(
      parseArgs(["--config", configPath, "--listen", "127.0.0.1:9000", "--backend", "b=127.0.0.1:9", "--backend", "c=127.0.0.1:3", "--connect-timeout", "250ms"]),
    );

    expect(settings.listen).toEqual([{ kind: "tcp", host: "127.0.0.1", port: 9000 }]);
    expect(settings.backends.describe()).toBe("a=127.0.0.1:1,b=127.0.0.1:9,c=127.0.0.1:3");
    expect(settings.connectTimeoutMs).toBe(250);
    expect(settings.shutdownGraceMs).toBe(5000);
  });

  test("takes listen from the file when no flag sets it", () => {
    const settings = resolveSettings(parseArgs(["--config", configPath]));

    expect(settings.listen).toEqual([{ kind: "tcp", host: "127.0.0.1", port: 7443 }]);
    expect(settings.backends.size).toBe(2);
  });

  test("rejects clashing listen addresses in the file", () => {
    const clashing = join(directory, "clash.yaml");
    writeFileSync(clashing, "listen: [ 0.0.0.0:7443, localhost:7443 ]\n");

    expect(() => resolveSettings(parseArgs(["--config", clashing, "--admin", "off"]))).toThrow("listen localhost:7443 overlaps listen 0.0.0.0:7443");
  });

  test("rejects a metrics address on a listen address", () => {
    const cli = parseArgs(["--listen", "127.0.0.1:7443", "--metrics", "0.0.0.0:7443", "--admin", "off"]);

    expect(() => resolveSettings(cli)).toThrow(ConfigError);
    expect(() => resolveSettings(cli)).toThrow("--metrics 0.0.0.0:7443 overlaps --listen 127.0.0.1:7443; an address can be bound only once");
  });

  test("rejects a metrics address on the admin address", () => {
    const clashing = join(directory, "metrics-clash.yaml");
    writeFileSync(clashing, "listen: 127.0.0.1:7443\nadmin: 127.0.0.1:9901\nmetrics: \"[::ffff:127.0.0.1]:9901\"\n");

    expect(() => resolveSettings(parseArgs(["--config", clashing]))).toThrow("metrics [::ffff:127.0.0.1]:9901 is the same address as admin API 127.0.0.1:9901");
  });

  test.each([
    ["--admin", "localhost:9901"],
    ["--admin", "LOCALHOST:9901"],
    ["--metrics", "localhost:9901"],
    ["--metrics", "metrics.internal:9901"],
  ])("rejects %s with a host name", (flag, value) => {
    const argv = ["--listen", "127.0.0.1:7443", "--admin", "off", flag, value];

    expect(() => resolveSettings(parseArgs(argv))).toThrow(
      `invalid address "${value}": the host must be an IP address, because a name such as localhost binds whatever the resolver returns; use 127.0.0.1:9901 or [::1]:9901 for this machine`,
    );
  });

  test.each([
    ["status", []],
    ["add", ["a", "127.0.0.1:9"]],
    ["disable", ["a"]],
  ])("tinylb %s connects to a host name", (command, operands) => {
    const options = parseArgs([command, ...operands, "--admin", "localhost:9901"]);

    expect(options.providers?.admin).toEqual({ kind: "tcp", host: "localhost", port: 9901 });
  });

  test("rejects a config admin address with a host name", () => {
    const named = join(directory, "admin-name.yaml");
    writeFileSync(named, "listen: 127.0.0.1:7443\nadmin: localhost:9901\n");

    expect(() => resolveSettings(parseArgs(["--config", named]))).toThrow('admin: invalid address "localhost:9901": the host must be an IP address');
  });

  test("accepts metrics port 0 beside listen port 0", () => {
    const settings = resolveSettings(parseArgs(["--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--admin", "off"]));

    expect(settings.providers.metrics).toEqual({ kind: "tcp", host: "127.0.0.1", port: 0 });
  });

  test("requires a listen address", () => {
    expect(() => resolveSettings(parseArgs(["--backend", "a=127.0.0.1:1"]))).toThrow(ConfigError);
    expect(() => resolveSettings(parseArgs(["--backend", "a=127.0.0.1:1"]))).toThrow("no listen address: pass --listen ADDR");
  });
});
