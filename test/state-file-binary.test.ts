/**
 * End-to-end tests of `--state-file` across starts of `dist/tinylb`: what a start without the
 * admin API keeps of the admin API's saved backends.
 */
import { afterEach, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { tempDirectory } from "./support/temp-directory.ts";
import { TinylbProcess } from "./support/tinylb-process.ts";
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

async function start(args: string[]): Promise<TinylbProcess> {
  const tinylb = TinylbProcess.start(["--listen", "127.0.0.1:0", "--shutdown-grace", "0", "--backend", "static-1=127.0.0.1:9", ...args]);
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
