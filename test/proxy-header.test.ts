import { describe, expect, test } from "bun:test";
import { encodeLocalProxyHeader, encodeProxyHeader, parseIpv6, proxyHeaderOf } from "../src/proxy-header.ts";

const SIGNATURE = "0d0a0d0a000d0a515549540a";

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

function text(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("latin1");
}

describe("encodeProxyHeader v1", () => {
  test.each([
    ["IPv4", "192.0.2.10", 51234, "198.51.100.1", 7443, "PROXY TCP4 192.0.2.10 198.51.100.1 51234 7443\r\n"],
    ["IPv6", "2001:db8::10", 40000, "::1", 443, "PROXY TCP6 2001:db8::10 ::1 40000 443\r\n"],
    ["mapped IPv4", "::ffff:127.0.0.1", 5000, "::FFFF:127.0.0.2", 6443, "PROXY TCP4 127.0.0.1 127.0.0.2 5000 6443\r\n"],
  ])("%s", (_case, sourceHost, sourcePort, destinationHost, destinationPort, expected) => {
    const header = encodeProxyHeader("v1", { host: sourceHost, port: sourcePort }, { host: destinationHost, port: destinationPort });

    expect(text(header)).toBe(expected);
  });

  test("Unix socket client is UNKNOWN", () => {
    expect(text(encodeProxyHeader("v1", undefined, undefined))).toBe("PROXY UNKNOWN\r\n");
  });
});

describe("encodeProxyHeader v2", () => {
  test("IPv4", () => {
    const header = encodeProxyHeader("v2", { host: "192.0.2.10", port: 51234 }, { host: "198.51.100.1", port: 7443 });

    // PROXY command, TCP over IPv4, 12 address bytes: source, destination, source port, destination port.
    expect(hex(header)).toBe(`${SIGNATURE}2111000c` + "c000020a" + "c6336401" + "c822" + "1d13");
  });

  test("IPv6", () => {
    const header = encodeProxyHeader("v2", { host: "2001:db8::10", port: 40000 }, { host: "::1", port: 443 });

    expect(hex(header)).toBe(`${SIGNATURE}21210024` + "20010db8000000000000000000000010" + "00000000000000000000000000000001" + "9c40" + "01bb");
  });

  test("mapped IPv4 is TCP4", () => {
    const header = encodeProxyHeader("v2", { host: "::ffff:127.0.0.1", port: 5000 }, { host: "::ffff:127.0.0.2", port: 6443 });

    expect(hex(header)).toBe(`${SIGNATURE}2111000c` + "7f000001" + "7f000002" + "1388" + "192b");
  });

  test("Unix socket client is LOCAL", () => {
    // LOCAL command, AF_UNSPEC, no address bytes.
    expect(hex(encodeProxyHeader("v2", undefined, undefined))).toBe(`${SIGNATURE}20000000`);
  });

  test("mixed families are LOCAL", () => {
    const header = encodeProxyHeader("v2", { host: "127.0.0.1", port: 1 }, { host: "::1", port: 2 });

    expect(hex(header)).toBe(`${SIGNATURE}20000000`);
  });
});

describe("encodeLocalProxyHeader", () => {
  test("v1 is PROXY UNKNOWN", () => {
    expect(text(encodeLocalProxyHeader("v1"))).toBe("PROXY UNKNOWN\r\n");
  });

  test("v2 is the LOCAL command", () => {
    expect(hex(encodeLocalProxyHeader("v2"))).toBe(`${SIGNATURE}20000000`);
  });
});

describe("proxyHeaderOf", () => {
  test("reads the client's and local addresses", () => {
    const socket = { remoteAddress: "::ffff:10.1.2.3", remotePort: 1234, localAddress: "::ffff:10.0.0.1", localPort: 7443 };

    expect(text(proxyHeaderOf("v1", socket))).toBe("PROXY TCP4 10.1.2.3 10.0.0.1 1234 7443\r\n");
  });

  test("Unix socket client has no address", () => {
    const socket = { remoteAddress: undefined as unknown as string, remotePort: 0, localAddress: undefined as unknown as string, localPort: 0 };

    expect(text(proxyHeaderOf("v1", socket))).toBe("PROXY UNKNOWN\r\n");
    expect(hex(proxyHeaderOf("v2", socket))).toBe(`${SIGNATURE}20000000`);
  });
});

describe("parseIpv6", () => {
  test.each([
    ["::", "00000000000000000000000000000000"],
    ["::1", "00000000000000000000000000000001"],
    ["fe80::1%eth0", "fe800000000000000000000000000001"],
    ["1:2:3:4:5:6:7:8", "00010002000300040005000600070008"],
    ["::ffff:192.0.2.1", "00000000000000000000ffffc0000201"],
    ["2001:db8::", "20010db8000000000000000000000000"],
  ])("parses %p", (host, expected) => {
    expect(hex(parseIpv6(host))).toBe(expected);
  });

  test.each(["1:2:3:4:5:6:7:8:9", "1::2::3", "1:2:3:4:5:6:7::8", "12345::1", "g::1", "1:2:3"])("rejects %p", (host) => {
    expect(() => parseIpv6(host)).toThrow(`invalid IPv6 address "${host}"`);
  });
});
