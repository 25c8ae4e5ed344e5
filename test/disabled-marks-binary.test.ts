/**
 * End-to-end tests of disabled marks that outlive one run of `dist/tinylb`: the config file's
 * `backends[].disabled` key at start and at reload, and marks of `tinylb disable` saved in the
 * state file and restored at the next start.
 */
import { afterEach, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BalancerStatus } from "../src/balancer-status.ts";
import { TestBackend, TestClient } from "./support/backends.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { listenedPort, runTinylb, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor } from "./support/wait.ts";

const directory = tempDirectory("tinylb-disabled-marks-");

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

interface SavedEntry {
  id: string;
  target: string;
  provider: string;
  disabled?: boolean;
}

function readState(path: string): SavedEntry[] {
  return (JSON.parse(readFileSync(path, "utf8")) as { backends: SavedEntry[] }).backends;
}

function echoBackends(...ids: string[]): TestBackend[] {
  const backends = ids.map((id) => TestBackend.echo(id));
  cleanup.push(() => backends.forEach((backend) => backend.stop()));

  return backends;
}

async function start(args: string[]): Promise<{ tinylb: TinylbProcess; port: number }> {
  const tinylb = TinylbProcess.start(["--listen", "127.0.0.1:0", "--shutdown-grace", "0", ...args]);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());
  await tinylb.waitForLog("tinylb started");

  return { tinylb, port: listenedPort(tinylb.stderr) };
}

/** Connects `count` clients one after another and returns the greeting (backend id) of each. */
async function greetings(port: number, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const client = await TestClient.connect(port);
    await waitFor("a greeting", () => client.firstLine !== "" || client.ended || client.closed);
    ids.push(client.firstLine);
    client.socket.terminate();
  }

  return ids;
}

async function disabledIds(admin: string[]): Promise<string[]> {
  const result = await runTinylb(["status", "--json", ...admin]);
  expect(result.exitCode).toBe(0);

  return (JSON.parse(result.stdout) as BalancerStatus).backends.filter((backend) => backend.disabled).map((backend) => backend.id);
}

async function runAdmin(command: string[], admin: string[]): Promise<string> {
  const result = await runTinylb([...command, ...admin]);
  expect(result.stderr).toBe("");
  expect(result.exitCode).toBe(0);

  return result.stdout;
}

test("disable survives a restart with the state file", async () => {
  const [a, b, c] = echoBackends("a", "b", "c") as [TestBackend, TestBackend, TestBackend];
  const state = join(directory, "restart.json");
  const admin = ["--admin", `unix:${join(directory, "restart.sock")}`];
  const args = ["--backend", `a=${a.target}`, "--backend", `b=${b.target}`, "--backend", `c=${c.target}`, "--state-file", state, ...admin];

  // 1: b is disabled, and the state file records the mark.
  const first = await start(args);
  await runAdmin(["disable", "b"], admin);
  await waitFor("b saved as disabled", () => readState(state).some((entry) => entry.id === "b" && entry.disabled === true));
  expect(readState(state).filter((entry) => entry.disabled === true).map((entry) => entry.id)).toEqual(["b"]);
  expect(await first.tinylb.stop()).toBe(0);

  // 2: after the restart, b is still disabled and gets no clients.
  const second = await start(args);
  expect(second.tinylb.stderr).toContain("backends disabled again as the state file saved them; tinylb enable puts them back");
  expect(await disabledIds(admin)).toEqual(["b"]);
  const text = await runTinylb(["status", ...admin]);
  expect(text.stdout).toMatch(/\bb\b.*\bdisabled\b/);
  expect(await greetings(second.port, 6)).toEqual(["a", "c", "a", "c", "a", "c"]);

  // 3: enable clears the saved mark.
  await runAdmin(["enable", "b"], admin);
  await waitFor("b saved as enabled", () => readState(state).every((entry) => entry.disabled === undefined));
  expect((await greetings(second.port, 6)).sort()).toEqual(["a", "a", "b", "b", "c", "c"]);
});

test("state file drops the mark of a backend that left", async () => {
  const [a, c] = echoBackends("a", "c") as [TestBackend, TestBackend];
  const state = join(directory, "left.json");
  const saved = [
    { id: "a", target: a.target, provider: "static" },
    { id: "b", target: "127.0.0.1:9", provider: "static", disabled: true },
    { id: "c", target: c.target, provider: "static", disabled: true },
  ];
  writeFileSync(state, JSON.stringify({ version: 1, backends: saved }));
  const admin = ["--admin", `unix:${join(directory, "left.sock")}`];

  const { tinylb } = await start(["--backend", `a=${a.target}`, "--backend", `c=${c.target}`, "--state-file", state, ...admin]);
  expect(tinylb.stderr).toMatch(/saved disabled marks of backends no longer in the set are dropped .*backends=b/);
  expect(await disabledIds(admin)).toEqual(["c"]);
  await waitFor("b gone from the state file", () => !readState(state).some((entry) => entry.id === "b"));
});

test("state file without disabled fields loads as before", async () => {
  const [a, b] = echoBackends("a", "b") as [TestBackend, TestBackend];
  const state = join(directory, "old.json");
  const saved = [
    { id: "a", target: a.target, provider: "static" },
    { id: "b", target: b.target, provider: "static" },
  ];
  writeFileSync(state, JSON.stringify({ version: 1, savedAt: "2026-01-01T00:00:00.000Z", backends: saved }));
  const admin = ["--admin", `unix:${join(directory, "old.sock")}`];

  const { tinylb, port } = await start(["--backend", `a=${a.target}`, "--backend", `b=${b.target}`, "--state-file", state, ...admin]);
  expect(tinylb.stderr).toContain(`loaded 2 saved backends from ${state}`);
  expect(tinylb.stderr).not.toContain("skipped an invalid saved backend");
  expect(await disabledIds(admin)).toEqual([]);
  expect((await greetings(port, 4)).sort()).toEqual(["a", "a", "b", "b"]);
});

test("config disabled key at start and at reload", async () => {
  const [a, b, c] = echoBackends("a", "b", "c") as [TestBackend, TestBackend, TestBackend];
  const config = join(directory, "disabled.yaml");
  const write = (marks: Record<string, boolean>): void => {
    const lines = [a, b, c].map((backend) => `  - { id: ${backend.id}, target: "${backend.target}"${marks[backend.id] ? ", disabled: true" : ""} }`);
    writeFileSync(config, `listen: 127.0.0.1:0\nbackends:\n${lines.join("\n")}\n`);
  };
  write({ b: true });
  const admin = ["--admin", `unix:${join(directory, "disabled.sock")}`];
  const { tinylb, port } = await start(["--config", config, "--no-watch-config", ...admin]);

  // At start, b is disabled by the file.
  expect(tinylb.stderr).toMatch(/backend disabled by the config file .*backend=b/);
  expect(await disabledIds(admin)).toEqual(["b"]);
  expect(await greetings(port, 4)).toEqual(["a", "c", "a", "c"]);

  // tinylb enable overrides the key, and a reload that leaves the key as it was keeps b enabled.
  await runAdmin(["enable", "b"], admin);
  tinylb.signal("SIGHUP");
  await tinylb.waitForLog("config reloaded");
  expect(await disabledIds(admin)).toEqual([]);

  // A reload that moves the key from b to c disables c; b stays enabled.
  write({ c: true });
  tinylb.signal("SIGHUP");
  await tinylb.waitForLog(/backend disabled by the config file .*backend=c/);
  expect(await disabledIds(admin)).toEqual(["c"]);

  // A reload that drops the key enables c, but not a, which tinylb disable marked.
  await runAdmin(["disable", "a"], admin);
  write({ a: true });
  tinylb.signal("SIGHUP");
  await tinylb.waitForLog(/backend enabled: the config file no longer disables it .*backend=c/);
  write({});
  tinylb.signal("SIGHUP");
  await waitFor("the fourth reload", () => tinylb.stderr.split("config reloaded").length === 5);
  expect(await disabledIds(admin)).toEqual(["a"]);
  expect(await greetings(port, 4)).toEqual(["b", "c", "b", "c"]);

  // tinylb disable of a backend that the key disabled reports that, and keeps it disabled when the key goes.
  write({ b: true });
  tinylb.signal("SIGHUP");
  // The start logged the same line for b, so the reload is awaited by its effect.
  await waitFor("the file to disable b", async () => (await disabledIds(admin)).includes("b"));
  expect(await runAdmin(["disable", "b"], admin)).toContain("the config file's disabled key disabled it already; it now stays disabled when a reload drops the key");
  write({});
  tinylb.signal("SIGHUP");
  await waitFor("the sixth reload", () => tinylb.stderr.split("config reloaded").length === 7);
  expect(await disabledIds(admin)).toEqual(["a", "b"]);
});

test.each([
  ["another target", "flag-a"],
  ["the same target", "a"],
])("config disabled key of an id a flag gives with %s", async (_case, flagBackend) => {
  const [a, b, flagA] = echoBackends("a", "b", "flag-a") as [TestBackend, TestBackend, TestBackend];
  const flagTarget = flagBackend === "a" ? a.target : flagA.target;
  const config = join(directory, `outranked-${flagBackend}.yaml`);
  const write = (marks: Record<string, boolean>): void => {
    const lines = [a, b].map((backend) => `  - { id: ${backend.id}, target: "${backend.target}"${marks[backend.id] ? ", disabled: true" : ""} }`);
    writeFileSync(config, `listen: 127.0.0.1:0\nbackends:\n${lines.join("\n")}\n`);
  };
  write({ a: true });
  const admin = ["--admin", `unix:${join(directory, `outranked-${flagBackend}.sock`)}`];
  const { tinylb, port } = await start(["--config", config, "--no-watch-config", "--backend", `a=${flagTarget}`, ...admin]);

  // The flag's entry for a is the one in the set, so the file's key does not disable it.
  expect(tinylb.stderr).toMatch(/WARN\s+disabled key in the config file ignored: a provider that takes precedence publishes the backend id .*backend=a provider=static/);
  expect(tinylb.stderr).not.toContain("backend disabled by the config file");
  expect(await disabledIds(admin)).toEqual([]);
  expect(await greetings(port, 4)).toEqual([flagBackend, "b", flagBackend, "b"]);

  // A reload that keeps the key warns no more, and one that marks b too disables only b.
  write({ a: true, b: true });
  tinylb.signal("SIGHUP");
  await tinylb.waitForLog(/backend disabled by the config file .*backend=b/);
  expect(tinylb.stderr.split("disabled key in the config file ignored").length).toBe(2);
  expect(await disabledIds(admin)).toEqual(["b"]);
  expect(await greetings(port, 2)).toEqual([flagBackend, flagBackend]);
});
