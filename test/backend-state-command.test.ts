import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeStateChange, parseBackendStateArgs, runBackendStateCommand } from "../src/backend-state-command.ts";
import type { BackendStateChange } from "../src/backend-states.ts";
import { parseArgs } from "../src/cli.ts";
import { type CommandResult, runInProcess } from "./support/admin-command-output.ts";
import { startAdminFixture } from "./support/admin-fixture.ts";

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

/** Runs `tinylb disable` or `tinylb enable` in this process and collects what it prints. */
const run = (argv: string[]): Promise<CommandResult> => runInProcess(runBackendStateCommand, argv);

test.each([
  [["disable", "api-1"], { command: "disable", backendId: "api-1" }],
  [["disable", "--close-connections", "api-1", "--admin", "unix:/run/x.sock"], { command: "disable", backendId: "api-1", closeConnections: true, providers: { admin: { kind: "unix", path: "/run/x.sock" } } }],
  [["enable", "--admin=127.0.0.1:9901", "kubernetes:10.0.0.1", "--admin-token-file", "token"], { command: "enable", backendId: "kubernetes:10.0.0.1", providers: { admin: { kind: "tcp", host: "127.0.0.1", port: 9901 }, adminTokenFile: "token" } }],
  [["disable", "--close-connections=false", "api-1"], { command: "disable", backendId: "api-1", closeConnections: false }],
  [["disable", "--close-connections=TRUE", "api-1"], { command: "disable", backendId: "api-1", closeConnections: true }],
  [["enable", "a", "--help"], { command: "help", helpFor: "enable" }],
  [["disable", "a", "--help=true"], { command: "help", helpFor: "disable" }],
  [["disable", "-h"], { command: "help", helpFor: "disable" }],
] as const)("parseArgs reads %p", (argv, expected) => {
  expect(parseArgs(argv)).toMatchObject(expected);
});

test.each([
  [["disable"], "missing backend id: use tinylb disable ID, such as tinylb disable api-1; tinylb status lists the ids"],
  [["enable", "a", "b"], 'unexpected argument "b": tinylb enable takes one backend id'],
  [["enable", "a", "--close-connections"], "--close-connections is not valid with tinylb enable, which takes --admin ADDR and --admin-token-file FILE"],
  [["disable", "a", "--json"], "--json is not valid with tinylb disable, which takes --close-connections, --admin ADDR and --admin-token-file FILE"],
  [["disable", "a", "--close-connections=no"], '--close-connections is a switch: write --close-connections, --close-connections=true or --close-connections=false (got "no")'],
  [["disable", "a", "--admin"], "--admin needs a value"],
  [["disable", "a", "--admin", "/run/x.sock"], "; for a Unix socket, write unix:/run/x.sock"],
  [["disable", "-a"], "-a is not valid with tinylb disable"],
  [["disable", "a/b"], 'invalid backend id "a/b"'],
] as const)("parseBackendStateArgs rejects %p", (argv, message) => {
  const result = parseBackendStateArgs(argv);

  expect(typeof result).toBe("string");
  expect(result as string).toContain(message);
  expect(() => parseArgs(argv)).toThrow(message);
});

test("state commands do not offer --admin off", () => {
  expect(parseBackendStateArgs(["disable", "a", "--admin", "nonsense"])).not.toContain("or off");
});

test.each([
  [{ state: "disabled", changed: true }, 'disabled backend "a" (127.0.0.1:9): it gets no new clients, and its open connections stay until they close'],
  [{ state: "disabled", changed: true, closedConnections: 3 }, 'disabled backend "a" (127.0.0.1:9): it gets no new clients, and 3 connections opened for it were closed'],
  [{ state: "disabled", changed: true, closedConnections: 1 }, 'disabled backend "a" (127.0.0.1:9): it gets no new clients, and 1 connection opened for it was closed'],
  [{ state: "disabled", changed: true, closedConnections: 0 }, 'disabled backend "a" (127.0.0.1:9): it gets no new clients, and it had no open connections to close'],
  [{ state: "disabled", changed: false }, 'backend "a" (127.0.0.1:9) was disabled already; nothing changed'],
  [{ state: "disabled", changed: false, closedConnections: 2 }, 'backend "a" (127.0.0.1:9) was disabled already; 2 connections opened for it were closed'],
  [
    { state: "disabled", changed: false, fromConfigFile: true },
    'backend "a" (127.0.0.1:9): the config file\'s disabled key disabled it already; it now stays disabled when a reload drops the key, until tinylb enable',
  ],
  [
    { state: "disabled", changed: false, fromConfigFile: true, closedConnections: 2 },
    'backend "a" (127.0.0.1:9): the config file\'s disabled key disabled it already; it now stays disabled when a reload drops the key, until tinylb enable, and 2 connections opened for it were closed',
  ],
  [{ state: "enabled", changed: true }, 'enabled backend "a" (127.0.0.1:9): the rotation hands it out again'],
  [
    { state: "enabled", changed: true, slowStartMs: 30_000 },
    'enabled backend "a" (127.0.0.1:9): the rotation hands it out again, with a slow start: its share of new clients grows from 10% to a full share over 30s',
  ],
  [{ state: "enabled", changed: false }, 'backend "a" (127.0.0.1:9) was enabled already; nothing changed'],
] as const)("describeStateChange %p", (change, expected) => {
  expect(describeStateChange({ id: "a", target: "127.0.0.1:9", ...change } as BackendStateChange)).toBe(expected);
});

test("disable and enable change a balancer", async () => {
  const fixture = await startAdminFixture("unix", cleanup, { staticIds: ["a", "b"] });
  const admin = `unix:${(fixture.admin.address as { path: string }).path}`;
  const target = fixture.scenario.target("b");

  const disabled = await run(["disable", "b", "--admin", admin]);
  expect(disabled).toEqual({ code: 0, stdout: `disabled backend "b" (${target}): it gets no new clients, and its open connections stay until they close\n`, stderr: "" });
  expect(fixture.scenario.server.disabled.has("b")).toBe(true);

  const closed = await run(["disable", "b", "--close-connections", "--admin", admin]);
  expect(closed).toEqual({ code: 0, stdout: `backend "b" (${target}) was disabled already; it had no open connections to close\n`, stderr: "" });

  const enabled = await run(["enable", "b", "--admin", admin]);
  expect(enabled).toEqual({ code: 0, stdout: `enabled backend "b" (${target}): the rotation hands it out again\n`, stderr: "" });
  expect(fixture.scenario.server.disabled.has("b")).toBe(false);
});

test("disable of an unknown id exits 1", async () => {
  const fixture = await startAdminFixture("unix", cleanup, { staticIds: ["a"] });
  const admin = `unix:${(fixture.admin.address as { path: string }).path}`;

  const result = await run(["disable", "zz", "--admin", admin]);

  expect(result.code).toBe(1);
  expect(result.stdout).toBe("");
  expect(result.stderr).toBe(`tinylb disable: the balancer on ${admin} responded with status 404: backend "zz" not found in the running set\n`);
});

test("enable without a balancer exits 1", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tinylb-state-command-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const socket = join(dir, "admin.sock");

  const result = await run(["enable", "a", "--admin", `unix:${socket}`]);

  expect(result.code).toBe(1);
  expect(result.stderr).toBe(`tinylb enable: no balancer responds on unix:${socket} (the socket does not exist); is tinylb running? Pass --admin ADDR for another address\n`);
});

test("disable rejects --admin off with exit 2", async () => {
  const result = await run(["disable", "a", "--admin", "off"]);

  expect(result.code).toBe(2);
  expect(result.stderr).toBe("tinylb disable: --admin off leaves no address to connect to; pass the balancer's admin address\n");
});
