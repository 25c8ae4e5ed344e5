/**
 * End-to-end tests of `--state-file` across starts of `dist/tinylb`: what a start without the
 * admin API keeps of the admin API's saved backends, and what a start as a user that cannot
 * read the file does with it.
 */
import { afterEach, expect, test } from "bun:test";
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDirectory } from "./support/temp-directory.ts";
import { BINARY, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor } from "./support/wait.ts";

const directory = tempDirectory("tinylb-state-e2e-");

const running: TinylbProcess[] = [];
afterEach(async () => {
  for (const tinylb of running.splice(0)) {
    await tinylb[Symbol.asyncDispose]();
  }
});

interface SavedEntry {
  id: string;
  target: string;
  provider: string;
}

function readState(path: string): { savedAt: string; backends: SavedEntry[] } {
  return JSON.parse(readFileSync(path, "utf8")) as { savedAt: string; backends: SavedEntry[] };
}

async function start(args: string[], command?: string[]): Promise<TinylbProcess> {
  const tinylb = TinylbProcess.start(["--listen", "127.0.0.1:0", "--shutdown-grace", "0", "--backend", "static-1=127.0.0.1:9", ...args], { command });
  running.push(tinylb);
  await tinylb.waitForLog("tinylb started");

  return tinylb;
}

function adminFetch(socket: string, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`http://localhost${path}`, { ...init, unix: socket } as RequestInit);
}

test("state file keeps admin API backends through a start with --admin off", async () => {
  const state = join(directory, "state.json");
  const socket = join(directory, "admin.sock");
  const apiEntry = { id: "api-1", target: "127.0.0.1:10", provider: "api" };

  // 1: the admin API adds api-1, and the state file records it.
  const first = await start(["--admin", `unix:${socket}`, "--state-file", state]);
  const put = await adminFetch(socket, "/v1/backends/api-1", { method: "PUT", body: JSON.stringify({ target: "127.0.0.1:10" }) });
  expect(put.status).toBe(201);
  await waitFor("api-1 in the state file", () => readState(state).backends.some((entry) => entry.id === "api-1"));
  expect(await first.stop()).toBe(0);
  const savedAt = readState(state).savedAt;

  // 2: without the admin API, api-1 is not served but stays in the rewritten file.
  const second = await start(["--admin", "off", "--state-file", state]);
  await waitFor("the state file rewritten", () => readState(state).savedAt !== savedAt);
  expect(second.stderr).toContain("saved admin API backends are not served while the admin API is off, and stay in the state file");
  expect(second.stderr).not.toContain("saved backends of providers no longer configured are ignored");
  expect(readState(state).backends).toEqual([{ id: "static-1", target: "127.0.0.1:9", provider: "static" }, apiEntry]);
  expect(await second.stop()).toBe(0);
  expect(readState(state).backends).toContainEqual(apiEntry);

  // 3: with the admin API on again, api-1 is served.
  await start(["--admin", `unix:${socket}`, "--state-file", state]);
  const response = await adminFetch(socket, "/v1/backends/api-1");
  expect(response.status).toBe(200);
  expect(((await response.json()) as { target: string }).target).toBe("127.0.0.1:10");
});

test("state file still drops backends of other providers no longer configured", async () => {
  const state = join(directory, "dropped.json");
  const config = join(directory, "dropped.yaml");
  await Bun.write(config, "listen: 127.0.0.1:0\nbackends: [{ id: file-1, target: 127.0.0.1:11 }]\n");

  const first = await start(["--admin", "off", "--state-file", state, "--config", config]);
  await waitFor("file-1 in the state file", () => readState(state).backends.some((entry) => entry.id === "file-1"));
  expect(await first.stop()).toBe(0);
  const savedAt = readState(state).savedAt;

  const second = await start(["--admin", "off", "--state-file", state]);
  await waitFor("the state file rewritten", () => readState(state).savedAt !== savedAt);
  expect(second.stderr).toContain("saved backends of providers no longer configured are ignored");
  expect(readState(state).backends).toEqual([{ id: "static-1", target: "127.0.0.1:9", provider: "static" }]);
});

const canDropPrivileges = process.getuid?.() === 0 && Bun.spawnSync(["setpriv", "--version"]).success;
if (!canDropPrivileges) {
  console.log("skipping the state file tests as user nobody: they need root, to start tinylb as another user, and setpriv");
}
/** Runs dist/tinylb as user and group 65534 (nobody), as a service whose user changed. */
const AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", BINARY];

/**
 * Makes a folder that user nobody can write, with `mode`, holding a state file of root with
 * mode 0600 that saves one admin API backend. Returns the state file's path and content.
 */
function rootStateFile(name: string, mode: number): { path: string; content: string } {
  // tempDirectory makes a folder that only root may enter.
  chmodSync(directory, 0o755);
  const folder = join(directory, name);
  mkdirSync(folder);
  chmodSync(folder, mode);
  const path = join(folder, "state.json");
  const content = JSON.stringify({ version: 1, savedAt: "2026-12-04T20:00:00.000Z", backends: [{ id: "api-1", target: "127.0.0.1:10", provider: "api" }] });
  writeFileSync(path, content, { mode: 0o600 });

  return { path, content };
}

test.skipIf(!canDropPrivileges)("state file unreadable to its user is moved aside", async () => {
  const { path, content } = rootStateFile("moved", 0o777);

  const tinylb = await start(["--admin", `unix:${join(directory, "moved", "admin.sock")}`, "--state-file", path], AS_NOBODY);
  await waitFor("the running set written", () => statSync(path).uid === 65534);

  expect(tinylb.stderr).toContain(`read state file failed; starting without saved backends, and the first write moves the file to ${path}.bad`);
  expect(tinylb.stderr).toContain('err="permission denied; make the file readable by the user tinylb runs as"');
  expect(tinylb.stderr).toContain("moved the state file that was not read in full aside before writing the running set");
  expect(readFileSync(`${path}.bad`, "utf8")).toBe(content);
  expect(statSync(`${path}.bad`).uid).toBe(0);
  expect(readState(path).backends).toEqual([{ id: "static-1", target: "127.0.0.1:9", provider: "static" }]);
  expect(await tinylb.stop()).toBe(0);
});

test.skipIf(!canDropPrivileges)("state file that cannot be moved aside is kept", async () => {
  // In a sticky folder, only the owner of a file may rename it or replace it.
  const { path, content } = rootStateFile("sticky", 0o1777);

  const tinylb = await start(["--admin", "off", "--state-file", path], AS_NOBODY);
  await tinylb.waitForLog("write state file failed; the running set is not saved");

  expect(tinylb.stderr).toContain(`read state file failed; starting without saved backends, and the first write moves the file to ${path}.bad`);
  expect(tinylb.stderr).toContain(`err="moving ${path}, which was not read in full, to ${path}.bad failed, so it is not overwritten: permission denied; give the file to the user tinylb runs as (chown), or move it away"`);
  expect(readFileSync(path, "utf8")).toBe(content);
  expect(readdirSync(join(directory, "sticky"))).toEqual(["state.json"]);
  expect(await tinylb.stop()).toBe(0);
  expect(readFileSync(path, "utf8")).toBe(content);
});
