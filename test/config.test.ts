import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, loadConfigFile, MAX_CONFIG_BYTES } from "../src/config.ts";
import { tempDirectory } from "./support/temp-directory.ts";

const directory = tempDirectory("tinylb-config-");

function write(name: string, text: string | Uint8Array): string {
  const path = join(directory, name);
  writeFileSync(path, text);

  return path;
}

function loadError(path: string): ConfigError {
  try {
    loadConfigFile(path);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);

    return error as ConfigError;
  }
  throw new Error(`expected ${path} to be rejected`);
}

const YAML = `# a comment
listen:
  - 127.0.0.1:7443
  - "[::1]:7443"
backends:
  - { id: api-2, target: 10.0.0.12:6443 }
  - id: api-1
    target: 10.0.0.11:6443
connectTimeout: 500ms
keepalive: 0
shutdownGrace: 2s
logLevel: debug
logFormat: json
`;

const JSON_TEXT = `{
  // JSONC comments are allowed
  "listen": ["127.0.0.1:7443", "[::1]:7443"],
  "backends": [{ "id": "api-2", "target": "10.0.0.12:6443" }, { "id": "api-1", "target": "10.0.0.11:6443" }],
  "connectTimeout": "500ms",
  "keepalive": "0",
  "shutdownGrace": "2s",
  "logLevel": "debug",
  "logFormat": "json"
}`;

const TOML = `listen = ["127.0.0.1:7443", "[::1]:7443"]
connectTimeout = "500ms"
keepalive = "0"
shutdownGrace = "2s"
logLevel = "debug"
logFormat = "json"

[[backends]]
id = "api-2"
target = "10.0.0.12:6443"

[[backends]]
id = "api-1"
target = "10.0.0.11:6443"
`;

describe("loadConfigFile", () => {
  test.each([
    ["tinylb.yaml", YAML],
    ["tinylb.yml", YAML],
    ["tinylb.json", JSON_TEXT],
    ["tinylb.jsonc", JSON_TEXT],
    ["tinylb.toml", TOML],
    ["TINYLB.YAML", YAML],
  ])("reads %s", (name, text) => {
    const file = loadConfigFile(write(name, text));

    expect(file.listen).toEqual([
      { kind: "tcp", host: "127.0.0.1", port: 7443 },
      { kind: "tcp", host: "::1", port: 7443 },
    ]);
    expect(file.backends?.map((backend) => `${backend.id}=${backend.target}`)).toEqual(["api-2=10.0.0.12:6443", "api-1=10.0.0.11:6443"]);
    expect(file.connectTimeoutMs).toBe(500);
    expect(file.keepaliveMs).toBe(0);
    expect(file.shutdownGraceMs).toBe(2000);
    expect(file.logLevel).toBe("debug");
    expect(file.logFormat).toBe("json");
  });

  test("reads disabled backends", () => {
    const text = "backends:\n  - { id: a, target: 127.0.0.1:1, disabled: true }\n  - { id: b, target: 127.0.0.1:2, disabled: false }\n  - { id: c, target: 127.0.0.1:3 }\n";
    const file = loadConfigFile(write("disabled.yaml", text));
    expect(file.disabledBackends).toEqual(["a"]);
    expect(file.backends?.map((backend) => backend.id)).toEqual(["a", "b", "c"]);
  });

  test("rejects a disabled key that is not a boolean", () => {
    const path = write("disabled-word.yaml", "backends:\n  - { id: a, target: 127.0.0.1:1, disabled: maybe }\n");
    expect(() => loadConfigFile(path)).toThrow('backends[0].disabled (backend "a"): expected true or false, got the string "maybe"');
  });

  test("reports a value over two bounds once", () => {
    // zod's safe-integer bound and the key's own limit both reject 1e20.
    const path = write("huge-cap.yaml", "maxConnections: 100000000000000000000\n");

    expect(loadError(path).message).toBe(`invalid config ${path}: maxConnections: 100000000000000000000 is too large; use a whole number from 0 to 10000000`);
  });

  test("reads workers", () => {
    expect(loadConfigFile(write("workers.yaml", "workers: 4\n")).workers).toBe(4);
  });

  test("accepts a single listen address and an empty file", () => {
    expect(loadConfigFile(write("single.yaml", "listen: unix:/run/tinylb.sock\n")).listen).toEqual([{ kind: "unix", path: "/run/tinylb.sock" }]);
    const empty = loadConfigFile(write("empty.yaml", ""));
    expect(empty.listen).toBeUndefined();
    expect(empty.backends).toBeUndefined();
  });

  test.each([
    ["bad-target.yaml", "backends:\n  - { id: a, target: nope }\n", ["backends[0]", '"nope"', "expected host:port"]],
    ["bad-id.yaml", "backends:\n  - { id: 'has space', target: 127.0.0.1:1 }\n", ["backends[0]", '"has space"', "letters, digits"]],
    ["missing-target.yaml", "backends:\n  - { id: a }\n", ["backends[0].target"]],
    ["duplicate.yaml", "backends:\n  - { id: a, target: 127.0.0.1:1 }\n  - { id: a, target: 127.0.0.1:2 }\n", ["backends[1].id", 'duplicate id "a"', "backends[0]"]],
    ["bad-duration.yaml", "connectTimeout: 3 seconds\n", ["connectTimeout", '"3 seconds"', "such as 500ms or 3s"]],
    ["zero-timeout.yaml", "connectTimeout: 0\n", ["connectTimeout: use a duration above zero, such as 3s (got 0)"]],
    ["bad-listen.yaml", "listen: 127.0.0.1\n", ["listen", '"127.0.0.1"', "expected host:port"]],
    ["bad-listen-item.yaml", "listen: [127.0.0.1:1, x]\n", ["listen[1]", '"x"', "expected host:port"]],
    ["listen-number.yaml", "listen: 5\n", ["listen", "got 5", "expected an address such as 127.0.0.1:7443"]],
    ["unitless-duration.yaml", "keepalive: 30\n", ["keepalive", "invalid duration 30", "add a unit"]],
    ["fractional-keepalive.yaml", "keepalive: 1500ms\n", ["keepalive: the keepalive time 1500ms is not a whole number of seconds, but the kernel counts whole seconds; use 1s or 2s"]],
    ["long-keepalive.yaml", "keepalive: 32768s\n", ["keepalive: the keepalive time", "is longer than Linux allows (32767s, about 9 hours)"]],
    ["bad-level.json", '{ "logLevel": "loud" }', ["logLevel", "loud"]],
    ["misspelt.toml", 'conectTimeout = "3s"\n', ["conectTimeout", '(did you mean "connectTimeout"?)']],
    ["misspelt-backends.yaml", "backend: []\n", ['(top level): unknown key "backend" (did you mean "backends"?); valid keys: listen, backends,']],
    ["haproxy-key.yaml", "maxconn: 100\n", ['(top level): unknown key "maxconn" (did you mean "maxConnections"?)']],
    ["unitless-probe.yaml", "probe:\n  interval: 5\n", ["probe.interval: invalid duration 5: add a unit (ms, s, m or h), such as 5s"]],
    ["unitless-backoff.yaml", "dialBackoff: 5\n", ["dialBackoff: invalid duration 5: add a unit (ms, s, m or h), such as 5s"]],
    ["zero-rise.yaml", "probe:\n  rise: 0\n", ["probe.rise: must be at least 1 (got 0)"]],
    ["missing-target.yaml", "backends:\n  - { id: a }\n", ['backends[0].target (backend "a"): missing']],
    ["wrong-type.yaml", "backends: api-1=127.0.0.1:1\n", ["backends"]],
    ["string-backend.yaml", "backends:\n  - a=127.0.0.1:18001\n", ['backends[0]: expected an object such as { id: a, target: 127.0.0.1:18001 } (got "a=127.0.0.1:18001")']],
    ["word-backend.yaml", "backends: [web]\n", ['backends[0]: expected an object such as { id: api-1, target: 10.0.0.1:6443 } (got "web")']],
    ["mapping-backends.yaml", "backends:\n  a: 127.0.0.1:1\n  b: 127.0.0.1:2\n  c: 127.0.0.1:3\n", ["backends: expected a list of backends such as [{ id: a, target: 127.0.0.1:1 }, { id: b, target: 127.0.0.1:2 }]"]],
    ["mapping-of-objects.yaml", "backends:\n  a: { target: 127.0.0.1:1 }\n", ["backends: expected a list of backends such as [{ id: a, target: 127.0.0.1:1 }]"]],
    ["ipv6-flag-entry.yaml", 'backends:\n  - "api=[::1]:8080"\n', ['backends[0]: expected an object such as { id: api, target: "[::1]:8080" } (got "api=[::1]:8080")']],
    ["number-id-flag-entry.yaml", "backends:\n  - 7=127.0.0.1:1\n", ['backends[0]: expected an object such as { id: "7", target: 127.0.0.1:1 } (got "7=127.0.0.1:1")']],
    ["entry-without-list.yaml", "backends: { id: a, target: 127.0.0.1:1 }\n", ["backends: expected a list of backends such as [{ id: a, target: 127.0.0.1:1 }]"]],
    ["mapping-of-numbers.yaml", "backends:\n  a: 1\n", ["backends: expected a list of backends such as [{ id: api-1, target: 10.0.0.1:6443 }]"]],
    ["target-beside-ids.yaml", "backends: { target: 10.0.0.1:6443, api: 10.0.0.2:6443 }\n", ["backends: expected a list of backends such as [{ id: api-1, target: 10.0.0.1:6443 }, { id: api, target: 10.0.0.2:6443 }]"]],
    ["entry-after-id.yaml", "backends: { api: 10.0.0.2:6443, id: web, target: 10.0.0.1:6443 }\n", ["backends: expected a list of backends such as [{ id: api, target: 10.0.0.2:6443 }, { id: web, target: 10.0.0.1:6443 }]"]],
    ["entry-keys-beside-ids.yaml", "backends: { target: 10.0.0.1:6443, slowStart: 30s, proxyProtocol: v2, api: { target: 10.0.0.2:6443 } }\n", ["backends: expected a list of backends such as [{ id: api-1, target: 10.0.0.1:6443 }, { id: api, target: 10.0.0.2:6443 }]"]],
    ["target-beside-ids.toml", '[backends]\ntarget = "10.0.0.1:6443"\napi = "10.0.0.2:6443"\n', ['backends: expected a list of backends such as [{ id = "api-1", target = "10.0.0.1:6443" }, { id = "api", target = "10.0.0.2:6443" }]']],
    ["mapping-backends.toml", '[backends]\na = "127.0.0.1:1"\n', ['backends: expected a list of backends such as [{ id = "a", target = "127.0.0.1:1" }]']],
    ["string-backend.toml", 'backends = ["a=127.0.0.1:1"]\n', ['backends[0]: expected an object such as { id = "a", target = "127.0.0.1:1" } (got "a=127.0.0.1:1")']],
    ["mapping-backends.json", '{ "backends": { "a": "127.0.0.1:1" } }\n', ['backends: expected a list of backends such as [{"id": "a", "target": "127.0.0.1:1"}]']],
    ["list-target.yaml", "backends:\n  - { id: a, target: [::1] }\n", ['backends[0].target (backend "a"): expected a string, got a list: ["::1"]']],
    ["list-slow-start.yaml", "slowStart: [1s]\n", ['slowStart: expected a duration such as 30s, or off (got a list: ["1s"])']],
    ["nested-list-id.yaml", "backends: [{ id: [a, [b, [c, [d]]], 1, 2, 3, 4], target: 127.0.0.1:1 }]\n", ['backends[0].id: expected a string, got a list: ["a", ["b", ["c", [...]]], 1, 2, 3, and 1 more]']],
    ["empty-listen.yaml", "listen: []\n", ["listen: must have at least 1 entry"]],
    ["zero-workers.yaml", "workers: 0\n", ["workers", "at least 1", "got 0"]],
    ["many-workers.yaml", "workers: 257\n", ["workers", "at most 256", "got 257"]],
    ["quoted-disabled.yaml", 'backends:\n  - { id: api-1, target: 127.0.0.1:1, disabled: "true" }\n', ['backends[0].disabled (backend "api-1"): expected true or false without quotes, got the string "true"']],
    ["quoted-disabled.json", '{ "backends": [{ "id": "api-1", "target": "127.0.0.1:1", "disabled": "false" }] }', ['backends[0].disabled (backend "api-1"): expected true or false without quotes, got the string "false"']],
    ["quoted-disabled.toml", '[[backends]]\nid = "api-1"\ntarget = "127.0.0.1:1"\ndisabled = "true"\n', ['backends[0].disabled (backend "api-1"): expected true or false without quotes, got the string "true"']],
    ["word-disabled.yaml", "backends:\n  - { id: api-1, target: 127.0.0.1:1, disabled: yes }\n", ['backends[0].disabled (backend "api-1"): expected true or false, got the string "yes"']],
    ["quoted-skip-verify.yaml", 'backends:\n  - { id: api-1, target: 127.0.0.1:1, probe: { kind: https, tls: { insecureSkipVerify: "true" } } }\n', ['backends[0].probe.tls.insecureSkipVerify (backend "api-1"): expected true or false without quotes, got the string "true"']],
    ["quoted-expect-status.yaml", 'probe: { kind: http, expectStatus: "204" }\n', ['probe.expectStatus: expected a number without quotes, got the string "204"']],
    ["quoted-booleans.yaml", 'adminAllowPublic: "false"\nwatchConfig: "true"\nkubernetes: { inCluster: "true", viaListener: "false" }\n', [
      'adminAllowPublic: expected true or false without quotes, got the string "false"',
      'watchConfig: expected true or false without quotes, got the string "true"',
      'kubernetes.inCluster: expected true or false without quotes, got the string "true"',
      'kubernetes.viaListener: expected true or false without quotes, got the string "false"',
    ]],
    ["quoted-numbers.yaml", 'maxConnections: "100"\nmaxConnectionsPerBackend: "10"\nworkers: "2"\nmaxAttempts: "3"\nprobe: { kind: tcp, rise: "2" }\n', [
      'maxConnections: expected a number without quotes, got the string "100"',
      'maxConnectionsPerBackend: expected a number without quotes, got the string "10"',
      'workers: expected a number without quotes, got the string "2"',
      'maxAttempts: expected a number without quotes, got the string "3"',
      'probe.rise: expected a number without quotes, got the string "2"',
    ]],
    ["word-number.yaml", "workers: two\n", ['workers: expected a number, got the string "two"']],
    ["date-duration.toml", "connectTimeout = 1979-05-27T07:32:00Z\n", ["connectTimeout: expected a string, got the date and time 1979-05-27T07:32:00Z; quote the value"]],
    ["date-number.toml", "maxConnections = 1979-05-27\n", ["maxConnections: expected a number, got the date 1979-05-27"]],
    ["infinite-number.toml", "maxConnections = 1e400\n", ["maxConnections: 1e400 does not fit in a number (read as Infinity); use a whole number from 0 to 10000000"]],
  ])("rejects %s naming the file, field and value", (name, text, fragments) => {
    const path = write(name, text);
    const error = loadError(path);

    expect(error.message).toStartWith(`invalid config ${path}: `);
    for (const fragment of fragments) {
      expect(error.message).toContain(fragment);
    }
  });

  test.each([
    ["broken.yaml", "listen: 127.0.0.1:1\nbackends:\n  - { id: a, target: [ }\nlogLevel: info\n", 'failed at line 3: Unexpected token in `- { id: a, target: [ }`; check that line and the one before'],
    ["broken.toml", 'listen = "127.0.0.1:1"\nx = "abc\nlogLevel = "info"\n', "failed at line 2: Unterminated string"],
    ["bare-duration.toml", 'listen = "127.0.0.1:1"\nconnectTimeout = 3s\n', 'failed at line 2: Unexpected character after a value: \'s\' in `connectTimeout = 3s`; quote durations in TOML, as in connectTimeout = "3s"'],
    ["broken.json", '{\n  "listen": "127.0.0.1:1"\n  "logLevel": "info"\n}\n', 'failed at line 3: Expected "," but found ""logLevel"" in `"logLevel": "info"`'],
    ["open-quote.yaml", 'listen: 127.0.0.1:1\nbackends:\n  - id: "api-1\n    target: 127.0.0.1:2\n', "failed at line 4: Unexpected character in `target: 127.0.0.1:2`; check the double quote on line 3, which is not closed on that line"],
    ["open-quote-last.yaml", 'listen: "127.0.0.1:1\n', "failed at line 1: Unexpected EOF in `listen: \"127.0.0.1:1`; check the double quote on line 1"],
    ["quote-in-comment.yaml", 'listen: 127.0.0.1:1 # a "quote\nbackends: [ { id: a, target: 127.0.0.1:2 ]\n', "failed at line 2: Unexpected token in `backends: [ { id: a, target: 127.0.0.1:2 ]`; check that line and the one before"],
    ["quote-in-single.yaml", "listen: '127.0.0.1:1' # say \"hi\nbackends: [ { id: a, target: 127.0.0.1:2 ]\n", "failed at line 2: Unexpected token in `backends: [ { id: a, target: 127.0.0.1:2 ]`; check that line and the one before"],
    ["open-single-quote.yaml", "listen: '127.0.0.1:1\nbackends: []\n", "failed at line 2: Unexpected character in `backends: []`; check the single quote on line 1"],
    ["ipv6-target.yaml", "listen: 127.0.0.1:1\nbackends:\n  - { id: a, target: [::1]:80 }\n", 'failed at line 3: Unexpected token in `- { id: a, target: [::1]:80 }`; YAML reads a value that starts with [ as a list, so quote an IPv6 address, as in "[::1]:80"'],
    ["ipv6-block.yaml", "listen: 127.0.0.1:1\nbackends:\n  - id: a\n    target: [fe80::1%eth0]:6443\n", 'failed at line 4: Unexpected token in `target: [fe80::1%eth0]:6443`; YAML reads a value that starts with [ as a list, so quote an IPv6 address, as in "[fe80::1%eth0]:6443"'],
    ["ipv6-listen.yaml", "listen: [::]:7443\n", 'failed at line 1: Unexpected token in `listen: [::]:7443`; YAML reads a value that starts with [ as a list, so quote an IPv6 address, as in "[::]:7443"'],
    ["star.yaml", "listen: *:7443\n", 'failed at line 1: Unresolved alias in `listen: *:7443`; YAML reads a value that starts with * as an alias, so quote the address, as in "*:7443"'],
    ["star-list.yaml", "listen:\n  - 127.0.0.1:1\n  - *:7443\n", 'failed at line 3: Unresolved alias in `- *:7443`; YAML reads a value that starts with * as an alias, so quote the address, as in "*:7443"'],
    ["tab.yaml", "listen: 127.0.0.1:1\nbackends: [ {\tid: a }\n", 'failed at line 2: Unexpected token in "backends: [ {\\tid: a }"'],
    ["truncated.json", '{\n  "listen": "127.0.0.1:1",\n', "failed at the end of the file: Expected string but found end of file"],
    ["duplicate-target.yaml", "listen: 127.0.0.1:1\nbackends:\n  - { id: a, target: 127.0.0.1:18001, target: 127.0.0.1:18002 }\n", 'failed at line 3: duplicate key "target", already set at line 3; remove one of them'],
    ["duplicate-listen.yml", "listen: 127.0.0.1:1\nadmin: \"off\"\nlisten: 127.0.0.1:2\n", 'failed at line 3: duplicate key "listen", already set at line 1; remove one of them'],
    ["duplicate-listen.json", '{"listen": "127.0.0.1:1", "admin": "off",\n "listen": "127.0.0.1:2"}', 'failed at line 2: duplicate key "listen", already set at line 1; remove one of them'],
    ["duplicate-id.jsonc", '{\n  // one backend\n  "backends": [{ "id": "a", "target": "127.0.0.1:1",\n    "id": "b" }]\n}', 'failed at line 4: duplicate key "id", already set at line 3; remove one of them'],
    ["duplicate-listen.toml", 'listen = "127.0.0.1:1"\nlisten = "127.0.0.1:2"\n', "failed at line 2: Cannot redefine key 'listen'"],
    ["two-documents.yaml", "listen: 127.0.0.1:1\n---\nlogLevel: info\n", "failed: the file has 2 YAML documents (the second starts at line 2); put every setting in one document"],
    ["three-documents.yml", "# settings\n---\nlisten: 127.0.0.1:1\n---\n---\n", "failed: the file has 3 YAML documents (the second starts at line 4); put every setting in one document"],
  ])("rejects %s naming the line", (name, text, message) => {
    const path = write(name, text);

    expect(loadError(path).message).toStartWith(`parse config ${path} ${message}`);
  });

  test("reads one YAML document that starts with a marker", () => {
    const path = write("one-document.yaml", "# settings\n---\nlisten: 127.0.0.1:1\nlogLevel: |\n  ---\n");

    expect(loadError(path).message).toContain("logLevel");
    expect(loadError(path).message).not.toContain("YAML documents");
  });

  test("reads a quoted * listen host as 0.0.0.0", () => {
    const path = write("star-quoted.yaml", 'listen: ["*:7443", "[::1]:7443"]\nmetrics: "*:9180"\n');
    const config = loadConfigFile(path);

    expect(config.listen).toEqual([{ kind: "tcp", host: "0.0.0.0", port: 7443 }, { kind: "tcp", host: "::1", port: 7443 }]);
    expect(config.providers?.metrics).toEqual({ kind: "tcp", host: "0.0.0.0", port: 9180 });
  });

  test("reads comments and trailing commas in .json", () => {
    const path = write("commented.json", '{\n  // local only\n  "listen": "127.0.0.1:1",\n}\n');

    expect(loadConfigFile(path).listen).toEqual([{ kind: "tcp", host: "127.0.0.1", port: 1 }]);
  });

  test("rejects a missing file", () => {
    const path = join(directory, "absent.yaml");

    expect(loadError(path).message).toBe(`read config ${path} failed: the file does not exist`);
  });

  test("rejects an unknown extension", () => {
    const path = write("tinylb.ini", "listen=1");

    expect(loadError(path).message).toBe(`read config ${path} failed: unknown extension ".ini"; use .yaml, .yml, .json, .jsonc or .toml`);
  });

  test("rejects a file that is not UTF-8", () => {
    const path = write("latin1.yaml", new Uint8Array([0x6c, 0x69, 0xff, 0x0a]));

    expect(loadError(path).message).toBe(`read config ${path} failed: the file is not valid UTF-8`);
  });

  test("rejects a file over the size limit", () => {
    const path = write("huge.yaml", "#".repeat(MAX_CONFIG_BYTES + 1));

    expect(loadError(path).message).toContain(`more than the ${MAX_CONFIG_BYTES} allowed`);
  });
});
