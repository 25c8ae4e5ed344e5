import { afterEach, expect, test } from "bun:test";
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import { ConfigError } from "../src/config.ts";
import { ReconnectBackoff } from "../src/providers/reconnect-backoff.ts";
import { StateFile } from "../src/state-file.ts";
import { mkfifo } from "./support/fifo.ts";
import { LogLines } from "./support/log-lines.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const step of cleanup.splice(0).reverse()) {
    step();
  }
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "tinylb-state-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));

  return dir;
}

const SET = new BackendSet([createBackend("api-1", "10.0.0.1:6443"), createBackend("dns@10.0.0.2", "10.0.0.2:6443"), createBackend("x", "unix:/run/x.sock")]);
const SOURCES: Record<string, string> = { "api-1": "static", "dns@10.0.0.2": "dns:api.test:6443", x: "api" };

test("StateFile carries saved backends through every write", () => {
  const path = join(tempDirectory("tinylb-state-carry-"), "state.json");
  const log = new LogLines();
  const state = new StateFile(path, log.logger);
  state.carry("api", new BackendSet([createBackend("api-9", "10.0.0.9:6443"), createBackend("shared", "10.0.0.8:6443")]));

  state.save(new BackendSet([createBackend("a", "10.0.0.1:6443")]), () => "static");
  expect(new StateFile(path).load().get("api")?.describe()).toBe("api-9=10.0.0.9:6443,shared=10.0.0.8:6443");

  state.save(new BackendSet([createBackend("b", "10.0.0.2:6443")]), () => "static");
  expect(new StateFile(path).load().get("api")?.describe()).toBe("api-9=10.0.0.9:6443,shared=10.0.0.8:6443");
  expect(new StateFile(path).load().get("static")?.describe()).toBe("b=10.0.0.2:6443");
  expect(log.withMessage("dropped a saved backend whose id a running provider now publishes")).toHaveLength(0);
});

test("StateFile drops a carried id that a provider publishes", () => {
  const path = join(tempDirectory("tinylb-state-carry-"), "state.json");
  const log = new LogLines();
  const state = new StateFile(path, log.logger);
  state.carry("api", new BackendSet([createBackend("api-9", "10.0.0.9:6443"), createBackend("shared", "10.0.0.8:6443")]));

  state.save(new BackendSet([createBackend("shared", "10.0.0.1:6443")]), () => "file");
  state.save(BackendSet.EMPTY, () => "file");

  // The file has one entry per id, so the running one is written and the carried one dropped for good.
  expect(new StateFile(path).load().get("api")?.describe()).toBe("api-9=10.0.0.9:6443");
  const warnings = log.withMessage("dropped a saved backend whose id a running provider now publishes");
  expect(warnings).toHaveLength(1);
  expect(warnings[0]!.backend).toBe("shared");
  expect(warnings[0]!.target).toBe("10.0.0.8:6443");
});

test("StateFile saves and loads by provider", () => {
  const path = join(tempDir(), "state.json");
  const state = new StateFile(path);

  state.save(SET, (id) => SOURCES[id]);
  const loaded = new StateFile(path).load();

  expect([...loaded.keys()].sort()).toEqual(["api", "dns:api.test:6443", "static"]);
  expect(loaded.get("static")?.describe()).toBe("api-1=10.0.0.1:6443");
  expect(loaded.get("dns:api.test:6443")?.describe()).toBe("dns@10.0.0.2=10.0.0.2:6443");
  expect(loaded.get("api")?.describe()).toBe("x=unix:/run/x.sock");
});

test("StateFile saves and loads disabled marks", () => {
  const path = join(tempDir(), "disabled.json");
  const state = new StateFile(path);

  state.save(SET, (id) => SOURCES[id], (id) => id === "x");
  const entries = (JSON.parse(readFileSync(path, "utf8")) as { backends: Record<string, unknown>[] }).backends;
  expect(entries.find((entry) => entry.id === "x")?.disabled).toBe(true);
  // Enabled backends have no field, as in files written before marks were saved.
  expect(entries.find((entry) => entry.id === "api-1")).toEqual({ id: "api-1", target: "10.0.0.1:6443", provider: "static" });

  const loaded = new StateFile(path);
  expect(loaded.load().get("api")?.describe()).toBe("x=unix:/run/x.sock");
  expect(loaded.savedDisabledIds()).toEqual(["x"]);
});

test("StateFile keeps the mark of a carried backend", () => {
  const path = join(tempDir(), "carried.json");
  const api = [{ id: "api-9", target: "10.0.0.9:6443", provider: "api", disabled: true }];
  writeFileSync(path, JSON.stringify({ version: 1, backends: api }));
  const state = new StateFile(path);
  const saved = state.load();
  state.carry("api", saved.get("api")!);

  state.save(new BackendSet([createBackend("a", "10.0.0.1:6443")]), () => "static");

  expect(new StateFile(path).load().get("api")?.describe()).toBe("api-9=10.0.0.9:6443");
  expect(JSON.parse(readFileSync(path, "utf8")).backends[1]).toEqual(api[0]);
});

test("StateFile skips a disabled field that is not a boolean", () => {
  const path = join(tempDir(), "bad-disabled.json");
  writeFileSync(path, JSON.stringify({ version: 1, backends: [{ id: "a", target: "10.0.0.1:6443", provider: "static", disabled: "yes" }] }));
  const log = new LogLines();
  const state = new StateFile(path, log.logger);

  expect(state.load().size).toBe(0);
  expect(state.savedDisabledIds()).toEqual([]);
  expect(String(log.withMessage("skipped an invalid saved backend")[0]?.err)).toContain("backends[0].disabled: ");
});

test("StateFile writes atomically with mode 0600", () => {
  const dir = tempDir();
  const path = join(dir, "state.json");
  const state = new StateFile(path);

  state.save(SET, (id) => SOURCES[id]);
  state.save(new BackendSet([createBackend("api-1", "10.0.0.1:6443")]), () => "static");

  expect(readdirSync(dir)).toEqual(["state.json"]);
  expect(statSync(path).mode & 0o777).toBe(0o600);
  const saved = JSON.parse(readFileSync(path, "utf8")) as { version: number; backends: unknown[] };
  expect(saved.version).toBe(1);
  expect(saved.backends).toEqual([{ id: "api-1", target: "10.0.0.1:6443", provider: "static" }]);
});

test("StateFile load of a missing file is empty and quiet", () => {
  const log = new LogLines();

  const loaded = new StateFile(join(tempDir(), "none.json"), log.logger).load();

  expect(loaded.size).toBe(0);
  expect(log.records).toEqual([]);
});

test.each([
  ["not JSON", "{", "the file is not valid JSON: Expected '}'"],
  ["wrong version", JSON.stringify({ version: 2, savedAt: "", backends: [] }), "version: must be 1"],
  ["no backends list", JSON.stringify({ version: 1, savedAt: "" }), "backends: missing"],
])("StateFile keeps a copy of an invalid file: %s", (_name, content, problem) => {
  const path = join(tempDir(), "state.json");
  writeFileSync(path, content);
  const log = new LogLines();
  const state = new StateFile(path, log.logger);

  const loaded = state.load();
  state.save(SET, (id) => SOURCES[id]);

  expect(loaded.size).toBe(0);
  const warnings = log.withMessage("invalid state file; starting without saved backends");
  expect(warnings.length).toBe(1);
  expect(warnings[0]!.file).toBe(path);
  expect(warnings[0]!.err).toBe(problem);
  expect(warnings[0]!.copy).toBe(`${path}.bad`);
  expect(readFileSync(`${path}.bad`, "utf8")).toBe(content);
  expect(statSync(`${path}.bad`).mode & 0o777).toBe(0o600);
});

test.each([
  ["too large", (path: string) => writeFileSync(path, `{"version":1,"backends":[]}${" ".repeat(4 * 1024 * 1024)}`), "the file has 4194331 bytes, more than the 4194304 allowed"],
  ["a FIFO", mkfifo, "it is a FIFO (named pipe), not a regular file; name a regular file or a symlink to one"],
  ["a symlink to a folder", (path: string) => symlinkSync(tmpdir(), path), "it is a folder, not a file"],
])("StateFile moves a file it could not read: %s", (_name, make, problem) => {
  const path = join(tempDir(), "state.json");
  make(path);
  const before = statSync(path);
  const log = new LogLines();
  const state = new StateFile(path, log.logger);

  const loaded = state.load();
  state.save(SET, (id) => SOURCES[id]);

  expect(loaded.size).toBe(0);
  const warnings = log.withMessage(`read state file failed; starting without saved backends, and the first write moves the file, if there is one, to ${path}.bad`);
  expect(warnings.length).toBe(1);
  expect(warnings[0]!.err).toBe(problem);
  expect(log.withMessage("moved the state file that was not read in full aside before writing the running set")[0]!.copy).toBe(`${path}.bad`);
  // The same inode, untouched, now at FILE.bad.
  expect(statSync(`${path}.bad`).ino).toBe(before.ino);
  expect(statSync(`${path}.bad`).size).toBe(before.size);
  expect(readFileSync(path, "utf8")).toContain('"id": "api-1"');
});

test("StateFile writes nothing while a file it could not read cannot be moved", () => {
  const dir = tempDir();
  const path = join(dir, "state.json");
  const content = `{"version":1,"backends":[]}${" ".repeat(4 * 1024 * 1024)}`;
  writeFileSync(path, content);
  // A folder with a file in it at FILE.bad makes the rename fail.
  mkdirSync(`${path}.bad`);
  writeFileSync(join(`${path}.bad`, "keep"), "");
  const log = new LogLines();
  const state = new StateFile(path, log.logger);

  state.load();
  state.save(SET, (id) => SOURCES[id]);

  const warnings = log.withMessage("write state file failed; the running set is not saved until a retry succeeds");
  expect(warnings.length).toBe(1);
  expect(warnings[0]!.err).toBe(`moving ${path}, which was not read in full, to ${path}.bad failed, so it is not overwritten: ${path}.bad is a folder; remove it or move it away`);
  expect(readFileSync(path, "utf8")).toBe(content);
  expect(readdirSync(dir).sort()).toEqual(["state.json", "state.json.bad"]);

  // Once FILE.bad is free, the next write moves the file there and writes the set.
  rmSync(`${path}.bad`, { recursive: true });
  state.save(SET, (id) => SOURCES[id]);

  expect(readFileSync(`${path}.bad`, "utf8")).toBe(content);
  expect(readFileSync(path, "utf8")).toContain('"id": "api-1"');
  expect(log.withMessage("state file written again after failures").length).toBe(1);
});

test("StateFile moves an invalid file whose copy failed", () => {
  const dir = tempDir();
  const path = join(dir, "state.json");
  writeFileSync(path, "{");
  // A folder at the copy's path fails the copy, and it is gone before the first write.
  mkdirSync(`${path}.bad`);
  const log = new LogLines();
  const state = new StateFile(path, log.logger);

  state.load();
  rmSync(`${path}.bad`, { recursive: true });
  state.save(SET, (id) => SOURCES[id]);

  const warning = log.withMessage("invalid state file; starting without saved backends")[0]!;
  expect(String(warning.copyErr)).toStartWith(`keeping a copy at ${path}.bad failed, so the first write moves the file there: `);
  expect(readFileSync(`${path}.bad`, "utf8")).toBe("{");
  expect(readFileSync(path, "utf8")).toContain('"id": "api-1"');
});

// A user who can write in the state file's folder plants symlinks at the copy's path and at the
// temporary name that tinylb 0.1.0 used (FILE.PID.tmp). Links of the test's own user are followed
// whatever fs.protected_symlinks is set to, so this fails on a StateFile that opens through them.
test("StateFile writes through no planted symlink", () => {
  const dir = tempDir();
  chmodSync(dir, 0o1777);
  const path = join(dir, "state.json");
  const victim = join(tempDir(), "victim");
  writeFileSync(victim, "precious\n");
  writeFileSync(path, "attacker bytes\n");
  symlinkSync(victim, `${path}.bad`);
  symlinkSync(victim, `${path}.${process.pid}.tmp`);
  const log = new LogLines();
  const state = new StateFile(path, log.logger);

  state.load();
  state.save(SET, (id) => SOURCES[id]);

  expect(readFileSync(victim, "utf8")).toBe("precious\n");
  expect(lstatSync(`${path}.bad`).isFile()).toBe(true);
  expect(readFileSync(`${path}.bad`, "utf8")).toBe("attacker bytes\n");
  expect(statSync(`${path}.bad`).mode & 0o777).toBe(0o600);
  expect(lstatSync(path).isFile()).toBe(true);
  expect(readFileSync(path, "utf8")).toContain('"id": "api-1"');
  expect(statSync(path).mode & 0o777).toBe(0o600);
  // Only the planted link at the old temporary name is left over.
  expect(readdirSync(dir).sort()).toEqual([`state.json.${process.pid}.tmp`, "state.json", "state.json.bad"].sort());
});

test("StateFile skips only the invalid entries", () => {
  const path = join(tempDir(), "state.json");
  const content = JSON.stringify({
    version: 1,
    savedAt: "2026-12-04T20:00:00.000Z",
    backends: [
      { id: "good", target: "10.0.0.1:6443", provider: "static" },
      { id: "bad-ip", target: "999.1.1.1:1", provider: "static" },
      { id: "good", target: "10.0.0.2:6443", provider: "static" },
      { id: "no-provider", target: "10.0.0.3:6443" },
    ],
  });
  writeFileSync(path, content);
  const log = new LogLines();

  const loaded = new StateFile(path, log.logger).load();

  expect(loaded.get("static")?.describe()).toBe("good=10.0.0.1:6443");
  const skipped = log.withMessage("skipped an invalid saved backend");
  expect(skipped.map((line) => [line.entry, line.id])).toEqual([
    [1, "bad-ip"],
    [2, "good"],
    [3, "no-provider"],
  ]);
  expect(String(skipped[0]!.err)).toContain("999.1.1.1");
  expect(skipped[1]!.err).toBe('duplicate backend id "good"');
  expect(skipped[2]!.err).toBe("backends[3].provider: missing");
  expect(log.withMessage("state file has invalid entries; kept a copy before it is rewritten without them")[0]!.copy).toBe(`${path}.bad`);
  expect(readFileSync(`${path}.bad`, "utf8")).toBe(content);
  expect(log.withMessage(`loaded 1 saved backends from ${path} (saved at 2026-12-04T20:00:00.000Z)`).length).toBe(1);
});

test("StateFile loads a file without savedAt", () => {
  const path = join(tempDir(), "state.json");
  writeFileSync(path, JSON.stringify({ version: 1, backends: [{ id: "a", target: "10.0.0.1:1", provider: "api" }] }));
  const log = new LogLines();

  const loaded = new StateFile(path, log.logger).load();

  expect(loaded.get("api")?.describe()).toBe("a=10.0.0.1:1");
  expect(log.withMessage(`loaded 1 saved backends from ${path}`).length).toBe(1);
  expect(existsSync(`${path}.bad`)).toBe(false);
});

test("StateFile checkPath names a missing folder", () => {
  const dir = tempDir();
  const path = join(dir, "missing-folder", "state.json");

  expect(() => new StateFile(path).checkPath()).toThrow(ConfigError);
  expect(() => new StateFile(path).checkPath()).toThrow(`invalid state file ${path}: the folder ${join(dir, "missing-folder")} does not exist; create it or pick another path`);
  expect(() => new StateFile(join(dir, "state.json")).checkPath()).not.toThrow();
});

test("StateFile checkPath rejects a folder", () => {
  const dir = tempDir();
  const link = join(dir, "link");
  symlinkSync(dir, link);

  expect(() => new StateFile(dir).checkPath()).toThrow(ConfigError);
  expect(() => new StateFile(dir).checkPath()).toThrow(`invalid state file ${dir}: it is a folder; name a file in it, such as ${join(dir, "state.json")}`);
  expect(() => new StateFile(link).checkPath()).toThrow(`invalid state file ${link}: it is a folder; name a file in it, such as ${join(link, "state.json")}`);
});

test("StateFile never moves a folder", () => {
  const dir = tempDir();
  const path = join(dir, "state");
  mkdirSync(path);
  writeFileSync(join(path, "other-data.txt"), "important");
  const log = new LogLines();
  const state = new StateFile(path, log.logger);

  const loaded = state.load();
  state.save(SET, (id) => SOURCES[id]);

  expect(loaded.size).toBe(0);
  const read = log.withMessage("read state file failed; starting without saved backends, and nothing is written while a folder is at its path");
  expect(read.length).toBe(1);
  expect(read[0]!.err).toBe("it is a folder, not a file");
  const write = log.withMessage("write state file failed; the running set is not saved until a retry succeeds");
  expect(write.length).toBe(1);
  expect(write[0]!.err).toBe("it is a folder, not a file");
  expect(readdirSync(dir)).toEqual(["state"]);
  expect(readFileSync(join(path, "other-data.txt"), "utf8")).toBe("important");
});

test("StateFile does not move a folder that replaced an unread file", () => {
  const dir = tempDir();
  const path = join(dir, "state.json");
  mkfifo(path);
  const log = new LogLines();
  const state = new StateFile(path, log.logger);

  state.load();
  rmSync(path);
  mkdirSync(path);
  state.save(SET, (id) => SOURCES[id]);

  const write = log.withMessage("write state file failed; the running set is not saved until a retry succeeds");
  expect(write.length).toBe(1);
  expect(write[0]!.err).toBe(`${path} is a folder now, so it is neither moved aside nor replaced; remove it or pick another path for the state file`);
  expect(statSync(path).isDirectory()).toBe(true);
  expect(readdirSync(dir)).toEqual(["state.json"]);
});

test("StateFile logs a failed write once per streak", () => {
  const dir = tempDir();
  const log = new LogLines();
  const state = new StateFile(join(dir, "missing-folder", "state.json"), log.logger);

  state.save(SET, (id) => SOURCES[id]);
  state.save(SET, (id) => SOURCES[id]);

  const warnings = log.withMessage("write state file failed; the running set is not saved until a retry succeeds");
  expect(warnings.length).toBe(1);
  expect(warnings[0]!.err).toBe(`the folder ${join(dir, "missing-folder")} does not exist; create it or pick another path`);
  expect(readdirSync(dir)).toEqual([]);
  state.close();
});

/** Returns a back-off without jitter: `initialMs`, then doubling. */
function fixedBackoff(initialMs: number): ReconnectBackoff {
  return new ReconnectBackoff({ initialMs, maxMs: initialMs * 8, random: () => 1 });
}

test("StateFile retries a failed write with a back-off", async () => {
  const dir = tempDir();
  const path = join(dir, "later", "state.json");
  const log = new LogLines();
  const state = new StateFile(path, log.logger, 1000, fixedBackoff(50));

  state.save(SET, (id) => SOURCES[id]);
  await waitFor("a second retry scheduled", () => log.withMessage("retrying the state file write later").length >= 2);
  mkdirSync(join(dir, "later"));
  await waitFor("the state file written", () => existsSync(path));

  expect(log.withMessage("retrying the state file write later").map((line) => line.delayMs).slice(0, 2)).toEqual([50, 100]);
  expect(log.withMessage("write state file failed; the running set is not saved until a retry succeeds").length).toBe(1);
  const recovered = log.withMessage("state file written again after failures");
  expect(recovered.length).toBe(1);
  expect(recovered[0]!.failures).toBeGreaterThanOrEqual(2);
  expect(readFileSync(path, "utf8")).toContain('"id": "api-1"');
  state.close();
});

test.each([
  ["flush", (state: StateFile) => state.flush()],
  ["close", (state: StateFile) => state.close()],
])("StateFile %s writes a failed set at once", (_name, write) => {
  const dir = tempDir();
  const path = join(dir, "later", "state.json");
  const log = new LogLines();
  const state = new StateFile(path, log.logger, 1000, fixedBackoff(60_000));

  state.save(SET, (id) => SOURCES[id]);
  mkdirSync(join(dir, "later"));
  write(state);

  expect(readFileSync(path, "utf8")).toContain('"id": "api-1"');
  expect(log.withMessage("state file written again after failures")[0]!.failures).toBe(1);
  expect(log.records.filter((record) => String(record.msg).startsWith("stopping with the running set not saved"))).toEqual([]);
  state.close();
});

test("StateFile close stops retrying a write that still fails", async () => {
  const dir = tempDir();
  const path = join(dir, "later", "state.json");
  const log = new LogLines();
  const state = new StateFile(path, log.logger, 1000, fixedBackoff(20));

  state.save(SET, (id) => SOURCES[id]);
  state.close();
  mkdirSync(join(dir, "later"));
  // Well past the 20 ms retry that close cancelled.
  await Bun.sleep(200);

  expect(existsSync(path)).toBe(false);
  const warnings = log.withMessage("stopping with the running set not saved; no set was written since this start, so the next start finds the file as it was before");
  expect(warnings.length).toBe(1);
  expect(warnings[0]!.failures).toBe(2);
  expect(log.withMessage("retrying the state file write later").length).toBe(1);
});

test("StateFile close after a write names the last set written", () => {
  const dir = tempDir();
  const path = join(dir, "state.json");
  const log = new LogLines();
  const state = new StateFile(path, log.logger, 1000, fixedBackoff(60_000));
  state.save(SET, (id) => SOURCES[id]);
  const written = readFileSync(path, "utf8");

  // A folder moved away fails the next write, and the file in it stays as it was.
  const moved = `${dir}-moved`;
  renameSync(dir, moved);
  cleanup.push(() => rmSync(moved, { recursive: true, force: true }));
  state.save(new BackendSet([createBackend("newer", "10.0.0.9:1")]), () => "api");
  state.close();

  expect(log.withMessage("stopping with the running set not saved; the next start loads the last set written").length).toBe(1);
  expect(readFileSync(join(moved, "state.json"), "utf8")).toBe(written);
});

test("StateFile saveSoon replaces a failed set", () => {
  const dir = tempDir();
  const path = join(dir, "later", "state.json");
  const state = new StateFile(path, undefined, 60_000, fixedBackoff(60_000));

  state.save(SET, (id) => SOURCES[id]);
  state.saveSoon(new BackendSet([createBackend("newer", "10.0.0.9:1")]), () => "api");
  mkdirSync(join(dir, "later"));
  state.flush();

  expect(readFileSync(path, "utf8")).toContain('"id": "newer"');
  expect(readFileSync(path, "utf8")).not.toContain('"id": "api-1"');
  state.close();
});

test("StateFile saveSoon writes only the latest of a burst", async () => {
  const path = join(tempDir(), "state.json");
  const state = new StateFile(path, undefined, 200);
  const first = new BackendSet([createBackend("a", "10.0.0.1:1")]);
  const second = new BackendSet([createBackend("b", "10.0.0.2:1")]);
  const third = new BackendSet([createBackend("c", "10.0.0.3:1")]);

  state.saveSoon(first, () => "static");
  state.saveSoon(second, () => "static");
  state.saveSoon(third, () => "static");

  const ids = (): string[] => (JSON.parse(readFileSync(path, "utf8")) as { backends: { id: string }[] }).backends.map((backend) => backend.id);
  expect(ids()).toEqual(["a"]);
  await waitFor("the latest set written", () => ids()[0] === "c");
  expect(ids()).toEqual(["c"]);
});

test("StateFile flush writes a held-back set at once", () => {
  const path = join(tempDir(), "state.json");
  const state = new StateFile(path, undefined, 60_000);
  state.saveSoon(new BackendSet([createBackend("a", "10.0.0.1:1")]), () => "static");
  state.saveSoon(new BackendSet([createBackend("b", "10.0.0.2:1")]), () => "static");

  state.flush();

  expect(readFileSync(path, "utf8")).toContain('"id": "b"');
});

test("binary keeps a copy of a state file with a bad entry", async () => {
  const dir = tempDir();
  const path = join(dir, "state.json");
  const content = JSON.stringify({
    version: 1,
    savedAt: "2026-12-04T20:00:00.000Z",
    backends: [
      { id: "good", target: "127.0.0.1:9", provider: "api" },
      { id: "bad", target: "999.1.1.1:1", provider: "api" },
    ],
  });
  writeFileSync(path, content);
  await using tinylb = TinylbProcess.start(["--listen", "127.0.0.1:0", "--admin", `unix:${join(dir, "admin.sock")}`, "--state-file", path]);

  await tinylb.waitForLog("tinylb started");

  expect(tinylb.stderr).toContain(`loaded 1 saved backends from ${path} (saved at 2026-12-04T20:00:00.000Z)`);
  expect(tinylb.stderr).toContain('skipped an invalid saved backend component=state-file file=');
  expect(readFileSync(`${path}.bad`, "utf8")).toBe(content);
  const rewritten = JSON.parse(readFileSync(path, "utf8")) as { backends: unknown[] };
  expect(rewritten.backends).toEqual([{ id: "good", target: "127.0.0.1:9", provider: "api" }]);
  expect(await tinylb.stop()).toBe(0);
});
