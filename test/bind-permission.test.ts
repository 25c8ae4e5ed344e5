import { expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseEffectiveCapabilities, portBindErrorCode, socketCreateErrorCode, unprivilegedPortStart } from "../src/bind-permission.ts";
import { tempDirectory } from "./support/temp-directory.ts";

const directory = tempDirectory("tinylb-bind-permission-");
const isRoot = process.getuid?.() === 0;

test.each([
  ["root's full set", "Name:\ttinylb\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n", 0x1ffffffffffn],
  ["an empty set", "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n", 0n],
  ["CAP_NET_BIND_SERVICE alone", "CapEff:\t0000000000000400\n", 1n << 10n],
  ["no CapEff line", "Name:\ttinylb\nCapPrm:\t0000000000000400\n", undefined],
  ["a malformed CapEff line", "CapEff:\tnone\n", undefined],
])("parseEffectiveCapabilities reads %s", (_case, status, expected) => {
  expect(parseEffectiveCapabilities(status)).toBe(expected);
});

test("unprivilegedPortStart reads the sysctl", () => {
  const expected = Number(Bun.spawnSync(["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"]).stdout.toString().trim() || "1024");

  expect(unprivilegedPortStart()).toBe(expected);
});

test("portBindErrorCode accepts port 0", () => {
  expect(portBindErrorCode(0)).toBeUndefined();
});

test.skipIf(!isRoot)("portBindErrorCode accepts a low port for root", () => {
  expect(portBindErrorCode(80)).toBeUndefined();
});

test("socketCreateErrorCode accepts a folder of this user", () => {
  const folder = join(directory, "own");
  mkdirSync(folder);

  expect(socketCreateErrorCode(join(folder, "lb.sock"), false)).toBeUndefined();
  expect(socketCreateErrorCode(join(folder, "missing", "deeper", "admin.sock"), true)).toBeUndefined();
});

test("socketCreateErrorCode leaves a missing folder to the folder check", () => {
  expect(socketCreateErrorCode(join(directory, "missing", "lb.sock"), false)).toBeUndefined();
});

test("socketCreateErrorCode names a file on the path", () => {
  const file = join(directory, "file");
  writeFileSync(file, "");

  expect(socketCreateErrorCode(join(file, "admin.sock"), true)).toBe("ENOTDIR");
  expect(socketCreateErrorCode(join(file, "missing", "admin.sock"), true)).toBe("ENOTDIR");
  expect(socketCreateErrorCode(join(file, "lb.sock"), false)).toBe("ENOTDIR");
});
