import { expect, test } from "bun:test";
import { canonicalHost, decodeHost, findTcpSocket, findUnixSocket } from "../src/socket-table.ts";

// Lines as Linux 6.x prints them on a little-endian machine.
const TCP_TABLE = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1D13 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 16903250 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1D13 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 16903251 1 0000000000000000 20 4 30 10 -1
`;
const UNIX_TABLE = `Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 17000001 /run/tinylb/lb.sock
0000000000000000: 00000002 00000000 00000000 0002 01 17000002 /run/systemd/notify
0000000000000000: 00000003 00000000 00000000 0001 03 17000003
`;

test.each([
  ["0100007F", "LE", "127.0.0.1"],
  ["7F000001", "BE", "127.0.0.1"],
  ["00000000000000000000000001000000", "LE", "::1"],
  // The WHATWG URL parser writes an IPv4-mapped address in hex, for a listen address too.
  ["0000000000000000FFFF00000100007F", "LE", "::ffff:7f00:1"],
  ["B80D0120000000000000000001000000", "LE", "2001:db8::1"],
] as const)("decodeHost reads %s (%s)", (hex, order, host) => {
  expect(decodeHost(hex, order)).toBe(host);
});

test("canonicalHost shortens IPv6 and keeps other hosts", () => {
  expect(canonicalHost("0:0:0:0:0:0:0:1")).toBe("::1");
  expect(canonicalHost("2001:DB8:0::1")).toBe("2001:db8::1");
  expect(canonicalHost("127.0.0.1")).toBe("127.0.0.1");
  expect(canonicalHost("::ffff:127.0.0.1")).toBe("::ffff:7f00:1");
  expect(canonicalHost("localhost")).toBe("localhost");
});

test("findTcpSocket finds a listening socket by inode", () => {
  expect(findTcpSocket(TCP_TABLE, "16903250")).toEqual({ address: { kind: "tcp", host: decodeHost("0100007F"), port: 7443 }, listening: true, type: "stream" });
  expect(findTcpSocket(TCP_TABLE, "16903251")?.listening).toBe(false);
  expect(findTcpSocket(TCP_TABLE, "1")).toBeUndefined();
});

test("findUnixSocket reads flags, type and path", () => {
  expect(findUnixSocket(UNIX_TABLE, "17000001")).toEqual({ address: { kind: "unix", path: "/run/tinylb/lb.sock" }, listening: true, type: "stream" });
  expect(findUnixSocket(UNIX_TABLE, "17000002")).toEqual({ address: { kind: "unix", path: "/run/systemd/notify" }, listening: false, type: "datagram" });
  expect(findUnixSocket(UNIX_TABLE, "17000003")).toEqual({ address: { kind: "unix", path: "" }, listening: false, type: "stream" });
});
