import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AddressError, formatAddress, isLocalAddress, parseAddress, parseListenAddress, parseTarget } from "../src/address.ts";
import { BackendError, createBackend } from "../src/backend.ts";
import { ConfigError, loadConfigFile } from "../src/config.ts";
import { tempDirectory } from "./support/temp-directory.ts";

describe("parseAddress", () => {
  test.each([
    ["127.0.0.1:6443", { kind: "tcp", host: "127.0.0.1", port: 6443 }, "127.0.0.1:6443"],
    ["localhost:80", { kind: "tcp", host: "localhost", port: 80 }, "localhost:80"],
    ["[::1]:7443", { kind: "tcp", host: "::1", port: 7443 }, "[::1]:7443"],
    ["[fe80::1%eth0]:22", { kind: "tcp", host: "fe80::1%eth0", port: 22 }, "[fe80::1%eth0]:22"],
    ["  api.internal:65535 ", { kind: "tcp", host: "api.internal", port: 65535 }, "api.internal:65535"],
    ["unix:/run/tinylb.sock", { kind: "unix", path: "/run/tinylb.sock" }, "unix:/run/tinylb.sock"],
    ["unix:relative.sock", { kind: "unix", path: "relative.sock" }, "unix:relative.sock"],
  ])("parses %p", (text, expected, canonical) => {
    const address = parseAddress(text);

    expect(address).toEqual(expected as ReturnType<typeof parseAddress>);
    expect(formatAddress(address)).toBe(canonical);
  });

  test.each([
    ["", "expected host:port"],
    ["127.0.0.1", "expected host:port"],
    [":80", "the host is missing; use a host name or IP, such as 127.0.0.1:80"],
    ["10.0.0.300:9", '"10.0.0.300" is not a valid IPv4 address'],
    // getaddrinfo reads these as 127.0.0.1, so they must not pass as host names.
    ["0x7f.0.0.1:9", '"0x7f.0.0.1" is not a valid IPv4 address (four decimal numbers from 0 to 255)'],
    ["127.1:9", '"127.1" is not a valid IPv4 address'],
    ["2130706433:9", '"2130706433" is not a valid IPv4 address'],
    ["10.0.1:9", '"10.0.1" is not a valid IPv4 address'],
    ["[fe80::zz]:80", '"fe80::zz" in brackets is not a valid IPv6 address'],
    ["::1:80", "put an IPv6 address in brackets"],
    ["[::1]80", "expected host:port"],
    ["[::1", "expected host:port"],
    ["[]:80", "the host is empty"],
    ["a b:80", "contains spaces or slashes"],
    ["host/x:80", "contains spaces or slashes"],
    ["host:", 'the port "" must be a number from 1 to 65535'],
    ["host:http", 'the port "http" must be a number'],
    ["host:-1", 'the port "-1" must be a number'],
    ["host:0", "the port 0 must be from 1 to 65535"],
    ["host:65536", "the port 65536 must be from 1 to 65535"],
    ["host:123456", 'the port "123456" must be a number'],
    ["unix:", "unix: needs a socket path"],
    ["unix:/a\0b", "unix: needs a socket path"],
  ])("rejects %p", (text, detail) => {
    let caught: unknown;
    try {
      parseAddress(text);
    } catch (error) {
      caught = error;
    }

    expect(caught).toBeInstanceOf(AddressError);
    expect((caught as Error).message).toContain(`invalid address "${text}"`);
    expect((caught as Error).message).toContain(detail);
  });

  test("suggests listen hosts for a missing host", () => {
    expect(() => parseAddress(":7021", true)).toThrow("use 127.0.0.1:7021 for this machine only, or 0.0.0.0:7021 or [::]:7021 for every interface");
  });

  test("accepts port 0 only for listeners", () => {
    expect(parseAddress("127.0.0.1:0", true)).toEqual({ kind: "tcp", host: "127.0.0.1", port: 0 });
    expect(() => parseAddress("127.0.0.1:0")).toThrow(AddressError);
  });
});

describe("parseTarget", () => {
  test.each([
    ["unix:relative.sock", 'the socket path "relative.sock" is relative', "use an absolute path, as in unix:/run/app.sock"],
    ["unix:./run/app.sock", 'the socket path "./run/app.sock" is relative', "use an absolute path"],
    ["0.0.0.0:80", "0.0.0.0 is the unspecified address", "or 127.0.0.1:80 for this machine"],
    ["[::]:80", ":: is the unspecified address", "or [::1]:80 for this machine"],
    ["[0:0::0]:80", "0:0::0 is the unspecified address", "or [::1]:80 for this machine"],
    ["[::ffff:0.0.0.0]:80", "::ffff:0.0.0.0 is the unspecified address", "or 127.0.0.1:80 for this machine"],
    [`unix:/tmp/${"a".repeat(98)}.sock`, "the path has 108 bytes, more than the 107 a Unix socket path can have", "use a shorter path"],
    [`unix:/tmp/${"é".repeat(49)}.sock`, "the path has 108 bytes", "use a shorter path"],
    ["*:80", "* is 0.0.0.0, every IPv4 address of this machine, which only a listener can use", "or 127.0.0.1:80 for this machine"],
    ["224.0.0.1:80", "224.0.0.1 is an IPv4 multicast address", "use the backend's own address"],
    ["239.255.255.250:80", "239.255.255.250 is an IPv4 multicast address", "use the backend's own address"],
    ["[::ffff:224.0.0.1]:80", "::ffff:224.0.0.1 is an IPv4 multicast address", "use the backend's own address"],
    ["255.255.255.255:80", "255.255.255.255 is the broadcast address", "use the backend's own address"],
    ["[ff02::1]:80", "ff02::1 is an IPv6 multicast address", "use the backend's own address"],
    ["bad!name:80", '"bad!name" is not a valid host name', "use the backend's own address"],
    [`${"a".repeat(64)}.test:80`, "is not a valid host name", "at most 63 characters"],
  ])("rejects %p", (text, problem, fix) => {
    let caught: unknown;
    try {
      parseTarget(text);
    } catch (error) {
      caught = error;
    }

    expect(caught).toBeInstanceOf(AddressError);
    expect((caught as Error).message).toContain(`invalid address "${text}"`);
    expect((caught as Error).message).toContain(problem);
    expect((caught as Error).message).toContain(fix);
  });

  test.each([
    ["ESC in a Unix path", "unix:/tmp/a\u001b[31mX", '"unix:/tmp/a\\u001b[31mX"'],
    ["a newline in a Unix path", "unix:/tmp/a\nb", '"unix:/tmp/a\\nb"'],
    ["ESC in a host name", "host\u001b:80", '"host\\u001b:80"'],
    ["a C1 character in a host name", "host\u009b:80", '"host\\u009b:80"'],
  ])("rejects %s", (_case, text, quoted) => {
    expect(() => parseTarget(text)).toThrow(AddressError);
    expect(() => parseTarget(text)).toThrow(`invalid address ${quoted}: it contains a control character; use a socket path or host name without one`);
  });

  test.each([
    "unix:/run/app.sock",
    `unix:/tmp/${"a".repeat(97)}.sock`,
    "127.0.0.1:80",
    "[::1]:80",
    "0.0.0.1:80",
    "[::2]:80",
    "[::ffff:127.0.0.1]:80",
    "api.internal:443",
    "_etcd-server._tcp.example.com:2380",
    "api.internal.:443",
    "223.255.255.255:80",
    "240.0.0.1:80",
    "[ff::1]:80",
  ])("accepts %p", (text) => {
    expect(parseTarget(text)).toEqual(parseAddress(text));
  });

  test("applies to backends from flags, files and the admin API alike", () => {
    expect(() => createBackend("a", "0.0.0.0:80")).toThrow(BackendError);
    expect(() => createBackend("a", "0.0.0.0:80")).toThrow('invalid target for backend "a": invalid address "0.0.0.0:80": 0.0.0.0 is the unspecified address');

    const dir = mkdtempSync(join(tmpdir(), "tinylb-target-"));
    try {
      const path = join(dir, "tinylb.yaml");
      writeFileSync(path, 'listen: 127.0.0.1:0\nbackends:\n  - { id: a, target: "unix:app.sock" }\n');
      expect(() => loadConfigFile(path)).toThrow(ConfigError);
      expect(() => loadConfigFile(path)).toThrow('backends[0]: invalid target for backend "a": invalid address "unix:app.sock": the socket path "app.sock" is relative');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("parseListenAddress", () => {
  test.each([
    ["127.0.0.1:0", { kind: "tcp", host: "127.0.0.1", port: 0 }],
    // HAProxy's `bind *:PORT`: every IPv4 address, spelled as the clash and self-target checks know it.
    ["*:7443", { kind: "tcp", host: "0.0.0.0", port: 7443 }],
    [" *:0 ", { kind: "tcp", host: "0.0.0.0", port: 0 }],
    ["unix:/run/tinylb.sock", { kind: "unix", path: "/run/tinylb.sock" }],
    [`unix:/tmp/${"a".repeat(97)}.sock`, { kind: "unix", path: `/tmp/${"a".repeat(97)}.sock` }],
  ])("accepts %p", (text, expected) => {
    expect(parseListenAddress(text)).toEqual(expected as ReturnType<typeof parseListenAddress>);
  });

  test.each(["unix:relative.sock", "unix:./run/lb.sock"])("rejects the relative path %p", (text) => {
    const path = text.slice("unix:".length);

    expect(() => parseListenAddress(text)).toThrow(AddressError);
    expect(() => parseListenAddress(text)).toThrow(
      `invalid address "${text}": the socket path "${path}" is relative, so it would depend on tinylb's working folder; use an absolute path, as in unix:/run/app.sock`,
    );
  });

  test("rejects a Unix socket path over 107 bytes", () => {
    const text = `unix:/tmp/${"a".repeat(98)}.sock`;

    expect(() => parseListenAddress(text)).toThrow(AddressError);
    expect(() => parseListenAddress(text)).toThrow(`invalid address "${text}": the path has 108 bytes, more than the 107 a Unix socket path can have; use a shorter path`);
  });

  test("applies to listen addresses of config files", () => {
    const path = join(tempDirectory("tinylb-listen-"), "tinylb.yaml");
    writeFileSync(path, `listen: "unix:/tmp/${"a".repeat(98)}.sock"\n`);

    expect(() => loadConfigFile(path)).toThrow(ConfigError);
    expect(() => loadConfigFile(path)).toThrow(`listen: invalid address "unix:/tmp/${"a".repeat(98)}.sock": the path has 108 bytes, more than the 107 a Unix socket path can have; use a shorter path`);
  });
});

describe("isLocalAddress", () => {
  test.each([
    ["127.0.0.1:1", true],
    ["127.255.0.9:1", true],
    ["localhost:1", true],
    ["LOCALHOST:1", true],
    ["[::1]:1", true],
    ["unix:/tmp/x.sock", true],
    ["10.0.0.1:1", false],
    ["[::]:1", false],
    ["0.0.0.0:1", false],
    ["example.com:1", false],
  ])("%p is local: %p", (text, local) => {
    expect(isLocalAddress(parseAddress(text))).toBe(local);
  });
});
