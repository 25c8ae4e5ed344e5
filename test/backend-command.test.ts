import { afterEach, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describeDelete, describePut, parseBackendCommandArgs, runBackendCommand } from "../src/backend-command.ts";
import { parseArgs } from "../src/cli.ts";
import { type CommandResult, runInProcess } from "./support/admin-command-output.ts";
import { type AdminFixture, type AdminFixtureOptions, startAdminFixture } from "./support/admin-fixture.ts";
import { tempDirectory } from "./support/temp-directory.ts";

const directory = tempDirectory("tinylb-backend-command-");

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

/** Runs `tinylb add` or `tinylb remove` in this process and collects what it prints. */
const run = (argv: string[]): Promise<CommandResult> => runInProcess(runBackendCommand, argv);

/** Starts a balancer with the static backend "a" and an admin API on a Unix socket, and returns it with its `unix:` admin address. */
async function startBalancer(options: AdminFixtureOptions = {}): Promise<{ fixture: AdminFixture; admin: string }> {
  const fixture = await startAdminFixture("unix", cleanup, options);

  return { fixture, admin: `unix:${(fixture.admin.address as { path: string }).path}` };
}

test.each([
  [["add", "api-4", "10.0.0.14:6443"], { command: "add", backendId: "api-4", target: "10.0.0.14:6443" }],
  [["add", "--admin", "unix:/run/x.sock", "api-4", "unix:/run/api.sock"], { command: "add", backendId: "api-4", target: "unix:/run/api.sock", providers: { admin: { kind: "unix", path: "/run/x.sock" } } }],
  [["remove", "api-4", "--admin-token-file=token"], { command: "remove", backendId: "api-4", providers: { adminTokenFile: "token" } }],
  [["add", "--help"], { command: "help", helpFor: "add" }],
  [["remove", "a", "-h"], { command: "help", helpFor: "remove" }],
] as const)("parseArgs reads %p", (argv, expected) => {
  expect(parseArgs(argv)).toMatchObject(expected);
});

test.each([
  [["add"], "missing backend id: use tinylb add ID TARGET, such as tinylb add api-4 10.0.0.14:6443"],
  [["add", "api-4"], "missing target: use tinylb add ID TARGET, such as tinylb add api-4 10.0.0.14:6443"],
  [["add", "a", "127.0.0.1:9", "extra"], 'unexpected argument "extra": tinylb add takes a backend id and a target'],
  [["remove"], "missing backend id: use tinylb remove ID, such as tinylb remove api-4; tinylb status lists the ids"],
  [["remove", "a", "b"], 'unexpected argument "b": tinylb remove takes one backend id'],
  [["remove", "a", "--close-connections"], "--close-connections is not valid with tinylb remove, which takes --admin ADDR and --admin-token-file FILE"],
  [["add", "a", "127.0.0.1:9", "--admin"], "--admin needs a value"],
  [["add", "a/b", "127.0.0.1:9"], 'invalid backend id "a/b": use 1 to 128 ASCII letters, digits or ._:@- starting with a letter or digit'],
] as const)("parseBackendCommandArgs rejects %p", (argv, message) => {
  const result = parseBackendCommandArgs(argv);

  expect(typeof result).toBe("string");
  expect(result as string).toBe(message);
  expect(() => parseArgs(argv)).toThrow(message);
});

test.each([
  [{ previousTarget: null }, 'added backend "x" (127.0.0.1:9)'],
  [{ previousTarget: "127.0.0.1:8" }, 'retargeted backend "x" from 127.0.0.1:8 to 127.0.0.1:9'],
  [{ previousTarget: "127.0.0.1:9" }, 'backend "x" dials 127.0.0.1:9 already; nothing changed'],
  [{}, 'backend "x" dials 127.0.0.1:9'],
  [{ previousTarget: null, servedBy: { provider: "api", target: "127.0.0.1:9" } }, 'added backend "x" (127.0.0.1:9)'],
  [{ previousTarget: null, servedBy: null }, 'added backend "x" (127.0.0.1:9)'],
  [
    { previousTarget: null, servedBy: { provider: "file", target: "127.0.0.1:9" } },
    'added backend "x" (127.0.0.1:9); provider "file" publishes "x" too and takes precedence, so its entry (127.0.0.1:9) serves',
  ],
  [
    { previousTarget: "127.0.0.1:8", servedBy: { provider: "static", target: "127.0.0.1:9" } },
    'retargeted backend "x" from 127.0.0.1:8 to 127.0.0.1:9; provider "static" publishes "x" too and takes precedence, so its entry (127.0.0.1:9) serves',
  ],
  [
    { previousTarget: null, servedBy: { provider: "api", target: "127.0.0.1:9" }, slowStartMs: 30_000 },
    'added backend "x" (127.0.0.1:9), with a slow start: its share of new clients grows from 10% to a full share over 30s',
  ],
] as const)("describePut %p", (fields, expected) => {
  expect(describePut({ id: "x", target: "127.0.0.1:9", ...fields })).toBe(expected);
});

test.each([
  [{}, 'removed backend "x" (127.0.0.1:9)'],
  [{ servedBy: null }, 'removed backend "x" (127.0.0.1:9)'],
  [{ servedBy: { provider: "api", target: "127.0.0.1:9" } }, 'removed backend "x" (127.0.0.1:9)'],
  [
    { servedBy: { provider: "file", target: "127.0.0.1:8" } },
    'removed the admin API\'s backend "x" (127.0.0.1:9); provider "file" still publishes "x", so its entry (127.0.0.1:8) keeps serving',
  ],
] as const)("describeDelete %p", (fields, expected) => {
  expect(describeDelete({ id: "x", target: "127.0.0.1:9", ...fields })).toBe(expected);
});

test("add and remove change a balancer", async () => {
  const { fixture, admin } = await startBalancer();
  const [a, b, c] = ["a", "b", "c"].map((id) => fixture.scenario.target(id));

  // Step 1: x is new.
  const added = await run(["add", "x", b!, "--admin", admin]);
  expect(added).toEqual({ code: 0, stdout: `added backend "x" (${b})\n`, stderr: "" });
  expect(fixture.scenario.running).toBe(`a=${a},x=${b}`);

  // Step 2: x moves to c's target.
  const retargeted = await run(["add", "x", c!, "--admin", admin]);
  expect(retargeted).toEqual({ code: 0, stdout: `retargeted backend "x" from ${b} to ${c}\n`, stderr: "" });
  expect(fixture.scenario.running).toBe(`a=${a},x=${c}`);

  // Step 3: the same target again changes nothing.
  const unchanged = await run(["add", "x", c!, "--admin", admin]);
  expect(unchanged).toEqual({ code: 0, stdout: `backend "x" dials ${c} already; nothing changed\n`, stderr: "" });
  expect(fixture.scenario.running).toBe(`a=${a},x=${c}`);

  // Step 4: x leaves the set.
  const removed = await run(["remove", "x", "--admin", admin]);
  expect(removed).toEqual({ code: 0, stdout: `removed backend "x" (${c})\n`, stderr: "" });
  expect(fixture.scenario.running).toBe(`a=${a}`);
  expect(fixture.api.set.size).toBe(0);
});

test("add names the serving static entry", async () => {
  const { fixture, admin } = await startBalancer();
  const a = fixture.scenario.target("a");

  const result = await run(["add", "a", a, "--admin", admin]);

  expect(result).toEqual({
    code: 0,
    stdout: `added backend "a" (${a}); provider "static" publishes "a" too and takes precedence, so its entry (${a}) serves\n`,
    stderr: "",
  });
  expect(fixture.api.set.get("a")?.target).toBe(a);
  expect(fixture.scenario.union.providerOf("a")).toBe("static");
  expect(fixture.scenario.running).toBe(`a=${a}`);
});

test("remove of an unknown id exits 1", async () => {
  const { admin } = await startBalancer();

  const result = await run(["remove", "zz", "--admin", admin]);

  expect(result.code).toBe(1);
  expect(result.stdout).toBe("");
  expect(result.stderr).toBe(`tinylb remove: the balancer on ${admin} responded with status 404: backend "zz" not found\n`);
});

test("add of another provider's id names it", async () => {
  const { fixture, admin } = await startBalancer();
  const [a, b] = ["a", "b"].map((id) => fixture.scenario.target(id));

  const result = await run(["add", "a", b!, "--admin", admin]);

  expect(result.code).toBe(1);
  expect(result.stdout).toBe("");
  expect(result.stderr).toBe(
    `tinylb add: the balancer on ${admin} responded with status 409: backend "a" comes from provider "static" with target ${a}; change it there or pick another id\n`,
  );
  expect(fixture.api.set.size).toBe(0);
});

test("remove of another provider's id names it", async () => {
  const { fixture, admin } = await startBalancer();

  const result = await run(["remove", "a", "--admin", admin]);

  expect(result.code).toBe(1);
  expect(result.stderr).toBe(
    `tinylb remove: the balancer on ${admin} responded with status 409: backend "a" comes from provider "static"; only backends set through the admin API can be deleted here, so remove its --backend flag and restart, or stop its clients with tinylb disable a --close-connections\n`,
  );
  expect(fixture.scenario.running).toBe(`a=${fixture.scenario.target("a")}`);
});

test("add of a bad target names the field", async () => {
  const { fixture, admin } = await startBalancer();

  const result = await run(["add", "x", "10.0.0.300:9", "--admin", admin]);

  expect(result.code).toBe(1);
  expect(result.stdout).toBe("");
  expect(result.stderr).toStartWith(`tinylb add: the balancer on ${admin} responded with status 400: target: `);
  expect(result.stderr).toContain('"10.0.0.300" is not a valid IPv4 address');
  expect(fixture.api.set.size).toBe(0);
});

test("add of a listen address names the field", async () => {
  const { fixture, admin } = await startBalancer();
  const listener = fixture.scenario.server.listeners[0]!.address as { host: string; port: number };

  const result = await run(["add", "x", `${listener.host}:${listener.port}`, "--admin", admin]);

  expect(result.code).toBe(1);
  expect(result.stderr).toStartWith(`tinylb add: the balancer on ${admin} responded with status 400: target: `);
  expect(fixture.api.set.size).toBe(0);
});

test("add sends the bearer token", async () => {
  const tokenFile = join(directory, "token");
  writeFileSync(tokenFile, "token-for-add-0123456789\n");
  const { fixture, admin } = await startBalancer({ tokenFile });
  const b = fixture.scenario.target("b");

  const without = await run(["add", "x", b, "--admin", admin]);
  expect(without.code).toBe(1);
  expect(without.stderr).toBe(
    `tinylb add: the balancer on ${admin} responded with status 401: missing or invalid bearer token; pass --admin-token-file FILE with the file that holds the balancer's admin token\n`,
  );
  expect(fixture.api.set.size).toBe(0);

  const added = await run(["add", "x", b, "--admin", admin, "--admin-token-file", tokenFile]);
  expect(added).toEqual({ code: 0, stdout: `added backend "x" (${b})\n`, stderr: "" });

  const removed = await run(["remove", "x", "--admin", admin, "--admin-token-file", tokenFile]);
  expect(removed).toEqual({ code: 0, stdout: `removed backend "x" (${b})\n`, stderr: "" });
});

test("add without a balancer exits 1", async () => {
  const socket = join(directory, "none.sock");

  const result = await run(["add", "x", "127.0.0.1:9", "--admin", `unix:${socket}`]);

  expect(result.code).toBe(1);
  expect(result.stdout).toBe("");
  expect(result.stderr).toBe(`tinylb add: no balancer responds on unix:${socket} (the socket does not exist); is tinylb running? Pass --admin ADDR for another address\n`);
});

test("remove rejects --admin off with exit 2", async () => {
  const result = await run(["remove", "x", "--admin", "off"]);

  expect(result.code).toBe(2);
  expect(result.stderr).toBe("tinylb remove: --admin off leaves no address to connect to; pass the balancer's admin address\n");
});
