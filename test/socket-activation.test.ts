import { describe, expect, test } from "bun:test";
import { ConfigError } from "../src/config.ts";
import { type DescriptorLookup, matchInheritedSockets, takeInheritedSockets } from "../src/socket-activation.ts";
import type { SocketInfo } from "../src/socket-table.ts";
import { LogLines } from "./support/log-lines.ts";

const PID = 4242;

/** A lookup that finds the sockets of `table` by descriptor, as the socket tables would. */
function lookupOf(table: Record<number, SocketInfo>): DescriptorLookup {
  return (fd) => table[fd];
}

const TCP_LISTENING: SocketInfo = { address: { kind: "tcp", host: "127.0.0.1", port: 7443 }, listening: true, type: "stream" };
const UNIX_LISTENING: SocketInfo = { address: { kind: "unix", path: "/run/tinylb/lb.sock" }, listening: true, type: "stream" };

describe("takeInheritedSockets", () => {
  test("reads the passed sockets and their names", () => {
    const env = { LISTEN_PID: String(PID), LISTEN_FDS: "2", LISTEN_FDNAMES: "web:local", PATH: "/bin" };
    const sockets = takeInheritedSockets(env, PID, lookupOf({ 3: TCP_LISTENING, 4: UNIX_LISTENING }));

    expect(sockets).toEqual([
      { fd: 3, address: TCP_LISTENING.address, key: "127.0.0.1:7443", fdName: "web" },
      { fd: 4, address: UNIX_LISTENING.address, key: "unix:/run/tinylb/lb.sock", fdName: "local" },
    ]);
  });

  test("removes the variables so that children do not see them", () => {
    const env: Record<string, string | undefined> = { LISTEN_PID: String(PID), LISTEN_FDS: "1", LISTEN_FDNAMES: "web", PATH: "/bin" };
    takeInheritedSockets(env, PID, lookupOf({ 3: TCP_LISTENING }));

    expect(env).toEqual({ PATH: "/bin" });
  });

  test("ignores sockets meant for another process", () => {
    const env: Record<string, string | undefined> = { LISTEN_PID: "1", LISTEN_FDS: "1" };

    expect(takeInheritedSockets(env, PID, lookupOf({ 3: TCP_LISTENING }))).toEqual([]);
    expect(env).toEqual({});
  });

  test("returns nothing without the variables", () => {
    expect(takeInheritedSockets({}, PID, lookupOf({}))).toEqual([]);
  });

  test("leaves out an empty name", () => {
    const sockets = takeInheritedSockets({ LISTEN_PID: String(PID), LISTEN_FDS: "1", LISTEN_FDNAMES: "" }, PID, lookupOf({ 3: TCP_LISTENING }));

    expect(sockets[0]!.fdName).toBeUndefined();
  });

  test.each([
    ["not a number", { LISTEN_FDS: "two" }, {}, 'invalid LISTEN_FDS "two": expected the number of passed sockets, a whole number'],
    ["negative", { LISTEN_FDS: "-1" }, {}, 'invalid LISTEN_FDS "-1"'],
    [
      "a datagram socket",
      { LISTEN_FDS: "1" },
      { 3: { ...UNIX_LISTENING, type: "datagram" } },
      "the socket the service manager passed as fd 3 is a Unix datagram socket; pass stream sockets only (ListenStream= in the socket unit)",
    ],
    [
      "a connection",
      { LISTEN_FDS: "1", LISTEN_FDNAMES: "web" },
      { 3: { ...TCP_LISTENING, listening: false } },
      'the socket the service manager passed as fd 3 ("web") is a connected socket, not a listening one; set Accept=no in the socket unit',
    ],
  ] as const)("rejects %s", (_case, variables, table, message) => {
    // A fresh environment for each call, because the first call removes the variables.
    const take = (): unknown => takeInheritedSockets({ LISTEN_PID: String(PID), ...variables }, PID, lookupOf(table as Record<number, SocketInfo>));

    expect(take).toThrow(ConfigError);
    expect(take).toThrow(message);
  });
});

describe("takeInheritedSockets warnings", () => {
  test.each([
    ["a LISTEN_FDS of another process that is not a number", { LISTEN_PID: "1", LISTEN_FDS: "abc" }, "invalid LISTEN_FDS; binding every listen address", "abc"],
    ["a negative LISTEN_FDS without LISTEN_PID", { LISTEN_FDS: "-1" }, "invalid LISTEN_FDS; binding every listen address", "-1"],
    ["a LISTEN_PID of this process without LISTEN_FDS", { LISTEN_PID: String(PID) }, "LISTEN_PID names this process but LISTEN_FDS is missing; binding every listen address", undefined],
  ])("warns about %s", (_case, env, message, value) => {
    const logs = new LogLines();

    expect(takeInheritedSockets(env, PID, lookupOf({}), logs.logger)).toEqual([]);
    expect(logs.messages()).toEqual([message]);
    expect(logs.records[0]!.value).toBe(value);
  });

  test("is silent about the sockets of another process", () => {
    const logs = new LogLines();

    expect(takeInheritedSockets({ LISTEN_PID: "1", LISTEN_FDS: "2" }, PID, lookupOf({}), logs.logger)).toEqual([]);
    expect(logs.messages()).toEqual([]);
  });
});

describe("matchInheritedSockets", () => {
  const sockets = takeInheritedSockets({ LISTEN_PID: String(PID), LISTEN_FDS: "2" }, PID, lookupOf({ 3: TCP_LISTENING, 4: { address: { kind: "tcp", host: "::1", port: 7443 }, listening: true, type: "stream" } }));

  test("pairs sockets with listen addresses by canonical address", () => {
    const listen = [
      { kind: "tcp", host: "127.0.0.1", port: 7443 },
      { kind: "tcp", host: "0:0:0:0:0:0:0:1", port: 7443 },
      { kind: "tcp", host: "127.0.0.1", port: 8443 },
    ] as const;

    expect(matchInheritedSockets(listen, sockets).map((socket) => socket.key)).toEqual(["127.0.0.1:7443", "[::1]:7443"]);
  });

  test("rejects a socket without a listen address", () => {
    const match = (): unknown => matchInheritedSockets([{ kind: "tcp", host: "127.0.0.1", port: 7443 }], sockets);

    expect(match).toThrow(ConfigError);
    expect(match).toThrow(
      "the socket the service manager passed as fd 4 listens on [::1]:7443, but no listen address is [::1]:7443; add it to listen (--listen [::1]:7443), or remove ListenStream=[::1]:7443 from the socket unit",
    );
  });
});
