/**
 * Config numbers that a parser reads as Infinity or NaN, such as `1e400`: the error names the
 * key, the value as written and the range the key accepts, in every config format.
 */
import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, loadConfigFile, validateConfig } from "../src/config.ts";
import { tempDirectory } from "./support/temp-directory.ts";

const directory = tempDirectory("tinylb-non-finite-");

test.each([
  ["whole.yaml", "maxConnections: 1e400\n", "maxConnections: 1e400 does not fit in a number (read as Infinity); use a whole number from 0 to 10000000"],
  ["whole.json", '{ "workers": 1e400 }\n', "workers: 1e400 does not fit in a number (read as Infinity); use a whole number from 1 to 256"],
  ["whole.toml", "maxAttempts = 1e400\n", "maxAttempts: 1e400 does not fit in a number (read as Infinity); use a whole number from 0 to 10000"],
  ["negative.toml", "maxConnectionsPerBackend = -1e400\n", "maxConnectionsPerBackend: -1e400 does not fit in a number (read as -Infinity); use a whole number from 0 to 10000000"],
  ["inf.yaml", "workers: .inf\n", "workers: .inf does not fit in a number (read as Infinity); use a whole number from 1 to 256"],
  ["inf.toml", "workers = inf\n", "workers: inf does not fit in a number (read as Infinity); use a whole number from 1 to 256"],
  ["nan.yaml", "workers: .nan\n", "workers: .nan is not a number (read as NaN); use a whole number from 1 to 256"],
  ["probe.yaml", "probe: { kind: tcp, rise: 1e400 }\n", "probe.rise: 1e400 does not fit in a number (read as Infinity); use a whole number from 1 to 100"],
  ["status.json", '{ "probe": { "kind": "http", "expectStatus": [200, 1e999] } }\n', "probe.expectStatus[1]: 1e999 does not fit in a number (read as Infinity); use a whole number from 100 to 599"],
  [
    "backend.yaml",
    "backends:\n  - { id: api-2, target: 127.0.0.1:1, probe: { kind: tcp, fall: 1e400 } }\n",
    'backends[0].probe.fall (backend "api-2"): 1e400 does not fit in a number (read as Infinity); use a whole number from 1 to 100',
  ],
  ["duration.yaml", "keepalive: 1e400\n", "keepalive: 1e400 does not fit in a number (read as Infinity); use a duration with a unit (ms, s, m or h) of at most 24h, such as 30s"],
  ["unsafe.yaml", "maxConnections: 9007199254740993\n", "maxConnections: 9007199254740993 is outside ±9007199254740991, the range of exact whole numbers (read as 9007199254740992); use a whole number from 0 to 10000000"],
  ["unsafe.json", '{ "probe": { "fall": -9007199254740993 } }\n', "probe.fall: -9007199254740993 is outside ±9007199254740991, the range of exact whole numbers (read as -9007199254740992); use a whole number from 1 to 100"],
  ["two-to-the-64.yaml", "maxConnections: 18446744073709551616\n", "maxConnections: 18446744073709551616 is too large; use a whole number from 0 to 10000000"],
  ["hex.yaml", "maxConnections: 0x20000000000001\n", "maxConnections: 0x20000000000001 is outside ±9007199254740991, the range of exact whole numbers (read as 9007199254740992); use a whole number from 0 to 10000000"],
  ["negative-hex.yaml", "probe: { kind: tcp, fall: -0x20000000000001 }\n", "probe.fall: -0x20000000000001 is outside ±9007199254740991, the range of exact whole numbers (read as -9007199254740992); use a whole number from 1 to 100"],
  ["octal.yaml", "workers: 0o400000000000000001\n", "workers: 0o400000000000000001 is outside ±9007199254740991, the range of exact whole numbers (read as 9007199254740992); use a whole number from 1 to 256"],
  ["hex-two-to-the-54.yaml", "maxConnections: 0x40000000000000\n", "maxConnections: 0x40000000000000 is too large; use a whole number from 0 to 10000000"],
  ["hex-max-uint64.yaml", "maxConnections: 0xFFFFFFFFFFFFFFFF\n", "maxConnections: 0xFFFFFFFFFFFFFFFF is outside ±9007199254740991, the range of exact whole numbers (read as 18446744073709552000); use a whole number from 0 to 10000000"],
  ["duration.toml", "slowStart = -inf\n", "slowStart: -inf does not fit in a number (read as -Infinity); use a duration with a unit (ms, s, m or h) of at most 24h, such as 30s"],
])("non-finite number in %s names the range", (name, text, message) => {
  const path = join(directory, name);
  writeFileSync(path, text);

  expect(() => loadConfigFile(path)).toThrow(ConfigError);
  expect(() => loadConfigFile(path)).toThrow(`invalid config ${path}: ${message}`);
});

test("non-finite number of a long literal is cut", () => {
  const path = join(directory, "long.json");
  const literal = "9".repeat(400);
  writeFileSync(path, `{ "workers": ${literal} }\n`);

  expect(() => loadConfigFile(path)).toThrow(`workers: ${"9".repeat(40)}... (400 characters) does not fit in a number (read as Infinity)`);
});

test("non-finite number without text names no literal", () => {
  expect(() => validateConfig("inline", { workers: Infinity })).toThrow(
    "invalid config inline: workers: the value does not fit in a number (read as Infinity); use a whole number from 1 to 256",
  );
});

test("non-finite number of a string key keeps the type error", () => {
  const path = join(directory, "string-key.yaml");
  writeFileSync(path, "logLevel: 1e400\n");

  expect(() => loadConfigFile(path)).toThrow("logLevel: ");
  expect(() => loadConfigFile(path)).not.toThrow("use a whole number");
});
