/**
 * End-to-end tests of `--state-file` across starts of `dist/tinylb`: what a start without the
 * admin API keeps of the admin API's saved backends, what a start as a user that cannot read
 * the file does with it, and state file paths that a start and `tinylb check` reject.
 */
import { afterEach, expect, test } from "bun:test";
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { asNobody, asOtherUser, canDropPrivileges, NOBODY_UID } from "./support/as-nobody.ts";
import { mkfifo } from "./support/fifo.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { BINARY, runTinylb, TinylbProcess } from "./support/tinylb-process.ts";
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

test("state file stays as it was after a start that cannot bind", async () => {
  const state = join(directory, "unbound-state.json");
  const saved = JSON.stringify({ savedAt: "2026-01-01T00:00:00.000Z", backends: [{ id: "dns:api.test:6443:127.0.0.5", target: "127.0.0.5:6443", provider: "dns:api.test:6443" }] });
  writeFileSync(state, saved, { mode: 0o600 });
  // A program other than tinylb holds the port, so no listen lock names it before the bind.
  const holder = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  try {
    const result = await runTinylb(["--listen", `127.0.0.1:${holder.port}`, "--admin", "off", "--state-file", state, "--backend", "zz=127.0.0.1:9"]);

    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain("EADDRINUSE");
    expect(readFileSync(state, "utf8")).toBe(saved);
  } finally {
    holder.stop(true);
  }
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

test("state file at the config path stops check and start", async () => {
  const config = join(directory, "same.yaml");
  const content = `listen: 127.0.0.1:0\nadmin: "off"\nstateFile: ${config}\nbackends: [{ id: a, target: 127.0.0.1:9 }]\n`;
  writeFileSync(config, content);

  const check = await runTinylb(["check", "--config", config]);
  const start = await runTinylb(["--config", config]);

  expect(check.stderr).toBe(
    `tinylb: invalid state file ${config}: --config names the same file (${config}), which tinylb reads, so each save of the running set would replace it; pick another path for stateFile, such as /var/lib/tinylb/state.json\n`,
  );
  expect(start.stderr).toBe(check.stderr);
  expect(check.exitCode).toBe(2);
  expect(start.exitCode).toBe(2);
  expect(readFileSync(config, "utf8")).toBe(content);
  expect(existsSync(`${config}.bad`)).toBe(false);
});

test("state file at the admin socket path stops check and start", async () => {
  const socket = join(directory, "admin-state.sock");
  const args = ["--listen", "127.0.0.1:0", "--backend", "a=127.0.0.1:9", "--admin", `unix:${socket}`, "--state-file", socket];

  const check = await runTinylb(["check", ...args]);
  const start = await runTinylb(args);

  expect(check.stderr).toContain(`invalid state file ${socket}: --admin unix:${socket} binds a Unix socket at the same path`);
  expect(start.stderr).toBe(check.stderr);
  expect(check.exitCode).toBe(2);
  expect(start.exitCode).toBe(2);
  expect(existsSync(socket)).toBe(false);
});

test("state file that is a folder stops check and start", async () => {
  const folder = join(directory, "state-folder");
  mkdirSync(folder);
  writeFileSync(join(folder, "other-data.txt"), "important");
  const args = ["--listen", "127.0.0.1:0", "--backend", "a=127.0.0.1:9", "--admin", "off", "--state-file", folder];

  const check = await runTinylb(["check", ...args]);
  const start = await runTinylb(args);

  expect(check.stderr).toBe(`tinylb: invalid state file ${folder}: it is a folder; name a file in it, such as ${join(folder, "state.json")}\n`);
  expect(start.stderr).toBe(check.stderr);
  expect(check.exitCode).toBe(2);
  expect(start.exitCode).toBe(2);
  expect(readdirSync(folder)).toEqual(["other-data.txt"]);
  expect(existsSync(`${folder}.bad`)).toBe(false);
});

test("check warns about a FIFO state file", async () => {
  const path = join(directory, "fifo-state.json");
  mkfifo(path);

  const { exitCode, stdout, stderr } = await runTinylb(["check", "--listen", "127.0.0.1:0", "--backend", "a=127.0.0.1:9", "--admin", "off", "--state-file", path]);

  expect(stderr).toContain(`the state file ${path} is a FIFO (named pipe), not a regular file, so a start ignores it and moves it to ${path}.bad; remove it or pick another path`);
  expect(stdout).toBe("config OK: 1 backend, 1 listener\n");
  expect(exitCode).toBe(0);
});

if (!canDropPrivileges) {
  console.log("skipping the state file tests as user nobody: they need root, to start tinylb as another user, and setpriv");
}
/** Runs dist/tinylb as user nobody, as a service whose user changed. */
const AS_NOBODY = asNobody([BINARY]);

/** Makes a folder of root with `mode` in the test's folder, which other users may then enter. */
function reachableFolder(name: string, mode: number): string {
  // tempDirectory makes a folder that only root may enter.
  chmodSync(directory, 0o755);
  const folder = join(directory, name);
  mkdirSync(folder);
  chmodSync(folder, mode);

  return folder;
}

/**
 * Makes a folder that user nobody can write, with `mode`, holding a state file of root with
 * mode 0600 that saves one admin API backend. Returns the state file's path and content.
 */
function rootStateFile(name: string, mode: number): { path: string; content: string } {
  const path = join(reachableFolder(name, mode), "state.json");
  const content = JSON.stringify({ version: 1, savedAt: "2026-12-04T20:00:00.000Z", backends: [{ id: "api-1", target: "127.0.0.1:10", provider: "api" }] });
  writeFileSync(path, content, { mode: 0o600 });

  return { path, content };
}

/**
 * Returns an admin socket path for tinylb run as nobody, in a folder of nobody with mode 0700,
 * because tinylb rejects an admin socket folder that others can write, such as the state file's.
 */
function nobodyAdminSocket(name: string): string {
  chmodSync(directory, 0o755);
  const folder = join(directory, name);
  mkdirSync(folder, { mode: 0o700 });
  chownSync(folder, NOBODY_UID, NOBODY_UID);

  return join(folder, "admin.sock");
}

test.skipIf(!canDropPrivileges)("state file unreadable to its user is moved aside", async () => {
  const { path, content } = rootStateFile("moved", 0o777);

  const tinylb = await start(["--admin", `unix:${nobodyAdminSocket("moved-admin")}`, "--state-file", path], AS_NOBODY);
  await waitFor("the running set written", () => statSync(path).uid === NOBODY_UID);

  expect(tinylb.stderr).toContain(`read state file failed; starting without saved backends, and the first write moves the file, if there is one, to ${path}.bad`);
  expect(tinylb.stderr).toContain('err="permission denied; make the file readable, and each folder on its path searchable, by the user tinylb runs as"');
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
  await tinylb.waitForLog("write state file failed; the running set is not saved until a retry succeeds");

  expect(tinylb.stderr).toContain(`read state file failed; starting without saved backends, and nothing is saved, because the sticky folder ${join(directory, "sticky")} keeps this user from moving the file of uid 0 aside`);
  expect(tinylb.stderr).toContain(`err="moving ${path}, which was not read in full, to ${path}.bad failed, so it is not overwritten: permission denied; give the file to the user tinylb runs as (chown), or move it away"`);
  expect(readFileSync(path, "utf8")).toBe(content);
  expect(readdirSync(join(directory, "sticky"))).toEqual(["state.json"]);
  expect(await tinylb.stop()).toBe(0);
  expect(readFileSync(path, "utf8")).toBe(content);
});

test.skipIf(!canDropPrivileges)("state file in a folder its user cannot write is kept", async () => {
  const { path, content } = rootStateFile("readonly", 0o755);

  const tinylb = await start(["--admin", "off", "--state-file", path], AS_NOBODY);
  await tinylb.waitForLog("read state file failed");

  expect(tinylb.stderr).toContain(`read state file failed; starting without saved backends, and nothing is saved, because this user cannot write the folder ${join(directory, "readonly")} to move the file aside`);
  expect(await tinylb.stop()).toBe(0);
  expect(readFileSync(path, "utf8")).toBe(content);
});

// A second user plants the links, as an attacker who shares the state file's folder would.
// With fs.protected_symlinks=1 the kernel stops root from following another user's link in a
// sticky world-writable folder, so this fails before the fix only where that sysctl is 0.
test.skipIf(!canDropPrivileges)("state file writes through no link of another user", async () => {
  const path = join(reachableFolder("shared", 0o1777), "state.json");
  const victim = join(directory, "victim");
  writeFileSync(victim, "precious\n");
  const plant = Bun.spawnSync(asOtherUser(["sh", "-c", `printf 'attacker bytes\\n' > "$1" && ln -s "$2" "$1.bad"`, "plant", path, victim]));
  expect(plant.exitCode).toBe(0);

  const tinylb = await start(["--admin", "off", "--state-file", path]);
  await waitFor("the running set written", () => statSync(path).uid === 0);

  expect(tinylb.stderr).toContain("invalid state file; starting without saved backends");
  expect(await tinylb.stop()).toBe(0);
  expect(readFileSync(victim, "utf8")).toBe("precious\n");
  expect(readFileSync(`${path}.bad`, "utf8")).toBe("attacker bytes\n");
  expect(statSync(`${path}.bad`).uid).toBe(0);
  expect(readState(path).backends).toEqual([{ id: "static-1", target: "127.0.0.1:9", provider: "static" }]);
});

/** Sends `PUT /v1/backends/ID` over the admin socket and expects it applied. */
async function addBackend(socket: string, id: string, target: string): Promise<void> {
  const response = await adminFetch(socket, `/v1/backends/${id}`, { method: "PUT", body: JSON.stringify({ target }), signal: AbortSignal.timeout(5000) });
  expect(response.status).toBe(201);
}

/** Counts the lines of `stderr` that contain `text`. */
function countLines(stderr: string, text: string): number {
  return stderr.split("\n").filter((line) => line.includes(text)).length;
}

/** Returns the delays of the state file retries scheduled so far, from the debug lines. */
function retryDelays(stderr: string): number[] {
  return [...stderr.matchAll(/retrying the state file write later .*delayMs=(\d+)/g)].map((match) => Number(match[1]));
}

test.skipIf(!canDropPrivileges)("state file write is retried after failures", async () => {
  const folder = reachableFolder("retried", 0o777);
  const path = join(folder, "state.json");
  const socket = nobodyAdminSocket("retried-admin");
  const ids = (): string[] => readState(path).backends.map((entry) => entry.id);
  const written = "state file written again after failures";
  const tinylb = await start(["--admin", `unix:${socket}`, "--state-file", path, "--log-level", "debug"], AS_NOBODY);
  await waitFor("the first write", () => statSync(path, { throwIfNoEntry: false })?.uid === NOBODY_UID);

  // 1: a read-only folder fails the write; the retry timer writes once the folder is writable again.
  chmodSync(folder, 0o555);
  await addBackend(socket, "api-1", "127.0.0.1:10");
  await tinylb.waitForLog("write state file failed; the running set is not saved until a retry succeeds");
  expect(ids()).toEqual(["static-1"]);
  chmodSync(folder, 0o777);
  await tinylb.waitForLog(written);
  expect(ids()).toEqual(["api-1", "static-1"]);

  // 2: SIGHUP writes at once, while the next retry is still at least 4 s away.
  chmodSync(folder, 0o555);
  await addBackend(socket, "api-2", "127.0.0.1:11");
  await waitFor("a retry 4 s or more away", () => retryDelays(tinylb.stderr).some((delay) => delay >= 4000), 20_000);
  chmodSync(folder, 0o777);
  const hangup = performance.now();
  tinylb.signal("SIGHUP");
  await waitFor("the write on SIGHUP", () => countLines(tinylb.stderr, written) === 2);
  expect(performance.now() - hangup).toBeLessThan(4000);
  expect(ids()).toEqual(["api-1", "api-2", "static-1"]);

  // 3: SIGTERM writes before the process exits, while the next retry is still at least 2 s away.
  const delaysBefore = retryDelays(tinylb.stderr).length;
  chmodSync(folder, 0o555);
  await addBackend(socket, "api-3", "127.0.0.1:12");
  await waitFor("a retry 2 s or more away", () => retryDelays(tinylb.stderr).slice(delaysBefore).some((delay) => delay >= 2000), 20_000);
  chmodSync(folder, 0o777);
  const stopping = performance.now();
  expect(await tinylb.stop()).toBe(0);
  expect(performance.now() - stopping).toBeLessThan(2000);
  expect(countLines(tinylb.stderr, written)).toBe(3);
  expect(ids()).toEqual(["api-1", "api-2", "api-3", "static-1"]);
}, 60_000);
