import { afterEach, expect, test } from "bun:test";
import { closeSync, mkdirSync, mkdtempSync, openSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileProvider } from "../src/providers/file-provider.ts";
import { SETTLE_MS } from "../src/providers/save-settle.ts";
import { BalancerScenario } from "./support/balancer-scenario.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "tinylb-file-provider-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));

  return dir;
}

const REJECTED = "config reload rejected; keeping the last good backend set";

/** Waits for a rejection whose error contains `text`; an in-place write may first show an empty file. */
async function rejection(scenario: BalancerScenario, text: string): Promise<Record<string, unknown>> {
  const find = (): Record<string, unknown> | undefined => scenario.log.withMessage(REJECTED).find((record) => String(record.err).includes(text));
  await waitFor(`rejection containing ${text}`, () => find() !== undefined);

  return find()!;
}

function yaml(scenario: BalancerScenario, ids: string[], comment = ""): string {
  const lines = ids.map((id) => `  - { id: ${id}, target: "${scenario.target(id)}" }`);

  return `${comment}listen: 127.0.0.1:0\nbackends:\n${lines.join("\n")}\n`;
}

async function startScenario(path: string, ids: string[], write: (text: string) => void): Promise<{ scenario: BalancerScenario; provider: FileProvider }> {
  const scenario = new BalancerScenario();
  cleanup.push(() => scenario.close());
  scenario.startBackends(["a", "b", "c"]);
  write(yaml(scenario, ids));
  const provider = new FileProvider({ path, debounceMs: 50, pollIntervalMs: 0, logger: scenario.log.logger });
  await scenario.start(provider);

  return { scenario, provider };
}

test("FileProvider applies a save by rename", async () => {
  const dir = tempDir();
  const path = join(dir, "tinylb.yaml");
  const { scenario } = await startScenario(path, ["a", "b"], (text) => writeFileSync(path, text));
  const clients = await scenario.connectEach(["a", "b"]);

  writeFileSync(join(dir, ".tinylb.yaml.swp"), yaml(scenario, ["b", "c"]));
  renameSync(join(dir, ".tinylb.yaml.swp"), path);

  await waitFor("set without a", () => scenario.running === `b=${scenario.target("b")},c=${scenario.target("c")}`);
  await waitFor("client of a to close", () => clients.get("a")!.closed);
  await BalancerScenario.echo(clients.get("b")!, "b stays");
  expect(clients.get("b")!.closed).toBe(false);
});

test("FileProvider applies an in-place write", async () => {
  const dir = tempDir();
  const path = join(dir, "tinylb.yaml");
  const { scenario } = await startScenario(path, ["a"], (text) => writeFileSync(path, text));
  const clients = await scenario.connectEach(["a"]);

  writeFileSync(path, yaml(scenario, ["a", "c"]));

  await waitFor("c added", () => scenario.server.set.get("c") !== undefined);
  await BalancerScenario.echo(clients.get("a")!, "a undisturbed");
  const more = await scenario.connectEach(["c"]);
  await BalancerScenario.echo(more.get("c")!, "c reached");
});

test("FileProvider follows a ConfigMap symlink swap", async () => {
  const dir = tempDir();
  const path = join(dir, "tinylb.yaml");
  const writeVersion = (version: string, text: string): void => {
    mkdirSync(join(dir, version));
    writeFileSync(join(dir, version, "tinylb.yaml"), text);
  };
  const { scenario } = await startScenario(path, ["a", "b"], (text) => {
    // The kubelet's layout: a timestamped folder, ..data pointing at it, the key pointing through ..data.
    writeVersion("..2026_12_04_01", text);
    symlinkSync("..2026_12_04_01", join(dir, "..data"));
    symlinkSync("..data/tinylb.yaml", path);
  });
  const clients = await scenario.connectEach(["a", "b"]);

  writeVersion("..2026_12_04_02", yaml(scenario, ["a", "c"]));
  symlinkSync("..2026_12_04_02", join(dir, "..data_tmp"));
  renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
  rmSync(join(dir, "..2026_12_04_01"), { recursive: true });

  await waitFor("set of a and c", () => scenario.running === `a=${scenario.target("a")},c=${scenario.target("c")}`);
  await waitFor("client of b to close", () => clients.get("b")!.closed);
  await BalancerScenario.echo(clients.get("a")!, "a stays");
});

test("FileProvider watches the folder of a symlink's target", async () => {
  const dir = tempDir();
  mkdirSync(join(dir, "link"));
  mkdirSync(join(dir, "real"));
  mkdirSync(join(dir, "other"));
  const path = join(dir, "link", "tinylb.yaml");
  const real = join(dir, "real", "tinylb.yaml");
  const { scenario, provider } = await startScenario(path, ["a"], (text) => {
    writeFileSync(real, text);
    symlinkSync(real, path);
  });
  expect(provider.watchedFolders).toEqual([join(dir, "link"), join(dir, "real")]);
  const targetWatches = () => scenario.log.withMessage("config file is a symlink into another folder; watching that folder too");
  expect(targetWatches()).toHaveLength(1);
  expect(targetWatches()[0]).toMatchObject({ level: "info", file: path, folder: join(dir, "real") });

  // An in-place write to the target raises events only in the target's folder.
  writeFileSync(real, yaml(scenario, ["b"]));
  await waitFor("set of b", () => scenario.running === `b=${scenario.target("b")}`);

  // The link moves to a third folder: the watch follows it, and the old folder is dropped.
  const other = join(dir, "other", "tinylb.yaml");
  writeFileSync(other, yaml(scenario, ["c"]));
  symlinkSync(other, join(dir, "link", ".tinylb.yaml.new"));
  renameSync(join(dir, "link", ".tinylb.yaml.new"), path);
  await waitFor("set of c", () => scenario.running === `c=${scenario.target("c")}`);
  expect(provider.watchedFolders).toEqual([join(dir, "link"), join(dir, "other")]);
  expect(targetWatches()).toHaveLength(2);
  // Each ConfigMap update moves the link, so the later moves are logged at debug only.
  expect(targetWatches()[1]).toMatchObject({ level: "debug", file: path, folder: join(dir, "other") });

  writeFileSync(other, yaml(scenario, ["a", "c"]));
  await waitFor("set of a and c", () => scenario.running === `a=${scenario.target("a")},c=${scenario.target("c")}`);
});

test("FileProvider watches a config folder made again", async () => {
  const dir = tempDir();
  const folder = join(dir, "cfg");
  mkdirSync(folder);
  const path = join(folder, "tinylb.yaml");
  const { scenario, provider } = await startScenario(path, ["a"], (text) => writeFileSync(path, text));

  rmSync(folder, { recursive: true });
  await rejection(scenario, "the file does not exist");
  await waitFor("watch on the parent folder", () => provider.watchedFolders.join() === dir);
  expect(scenario.log.withMessage("config folder is missing; watching its parent folder until it exists again")[0]).toMatchObject({ folder, watching: dir });

  mkdirSync(folder);
  writeFileSync(path, yaml(scenario, ["b"]));
  await waitFor("set of b", () => scenario.running === `b=${scenario.target("b")}`);
  expect(provider.watchedFolders).toEqual([folder]);
  expect(scenario.log.withMessage("config folder exists again; watching it")[0]).toMatchObject({ folder });

  // Later saves are seen by the new watch; polling is off in this test.
  writeFileSync(path, yaml(scenario, ["c"]));
  await waitFor("set of c", () => scenario.running === `c=${scenario.target("c")}`);
});

test("FileProvider keeps the set while the file is deleted", async () => {
  const dir = tempDir();
  const path = join(dir, "tinylb.yaml");
  const { scenario, provider } = await startScenario(path, ["a", "b"], (text) => writeFileSync(path, text));
  const clients = await scenario.connectEach(["a", "b"]);
  const before = scenario.running;

  unlinkSync(path);

  const missing = await rejection(scenario, `read config ${path} failed: the file does not exist`);
  expect(missing.file).toBe(path);
  expect(scenario.running).toBe(before);
  expect(provider.reloadFailures).toBe(1);
  await BalancerScenario.echo(clients.get("a")!, "a while missing");
  await BalancerScenario.echo(clients.get("b")!, "b while missing");

  writeFileSync(path, yaml(scenario, ["b"]));

  await waitFor("set of b", () => scenario.running === `b=${scenario.target("b")}`);
  await waitFor("client of a to close", () => clients.get("a")!.closed);
  await BalancerScenario.echo(clients.get("b")!, "b after");
});

test("FileProvider reports a folder made at the file's path", async () => {
  const dir = tempDir();
  const path = join(dir, "tinylb.yaml");
  const { scenario } = await startScenario(path, ["a"], (text) => writeFileSync(path, text));
  const before = scenario.running;

  unlinkSync(path);
  await rejection(scenario, "the file does not exist");
  mkdirSync(path);
  const folderError = await rejection(scenario, "it is a folder, not a file");
  // More events in the folder, 4 quiet periods apart, read the same failure, which is not logged again.
  writeFileSync(join(dir, "unrelated"), "x");
  await Bun.sleep(200);
  writeFileSync(join(dir, "unrelated"), "y");
  await Bun.sleep(200);
  // Then the file comes back, in one quiet period, so its read comes after the others.
  writeFileSync(join(dir, "next.yaml"), yaml(scenario, ["a"]));
  rmSync(path, { recursive: true });
  renameSync(join(dir, "next.yaml"), path);
  await waitFor("the fixed file to be read", () => scenario.log.withMessage("config reloaded").length > 0);

  expect(folderError.reason).toBe("file event");
  expect(scenario.log.withMessage(REJECTED).map((record) => record.err)).toEqual([
    expect.stringContaining("the file does not exist"),
    expect.stringContaining("it is a folder, not a file"),
  ]);
  expect(scenario.running).toBe(before);
});

test("FileProvider rejects an invalid file, then takes the fix", async () => {
  const dir = tempDir();
  const path = join(dir, "tinylb.yaml");
  const { scenario, provider } = await startScenario(path, ["a", "b"], (text) => writeFileSync(path, text));
  const clients = await scenario.connectEach(["a", "b"]);
  const before = scenario.running;

  writeFileSync(path, `backends:\n  - { id: a, target: "${scenario.target("a")}" }\n  - { id: b, target: "10.0.0.1:99999" }\n`);

  const message = String((await rejection(scenario, "99999")).err);
  expect(message).toContain(`invalid config ${path}`);
  expect(message).toContain("backends[1]");
  expect(scenario.running).toBe(before);

  writeFileSync(path, yaml(scenario, ["a"]));

  await waitFor("set of a", () => scenario.running === `a=${scenario.target("a")}`);
  await waitFor("client of b to close", () => clients.get("b")!.closed);
  await BalancerScenario.echo(clients.get("a")!, "a after fix");
  expect(provider.reloads).toBeGreaterThanOrEqual(2);
  expect(provider.reloadFailures).toBeGreaterThanOrEqual(1);
  // The fix is confirmed at info, unlike an ordinary save that the server's set line covers.
  // It removes b, so it is applied once the file has settled.
  expect(scenario.log.withMessage("config reloaded").some((record) => record.level === "info" && record.reason === "settled")).toBe(true);
});

test("FileProvider rejects an empty file", async () => {
  const dir = tempDir();
  const path = join(dir, "tinylb.yaml");
  const { scenario } = await startScenario(path, ["a"], (text) => writeFileSync(path, text));
  const before = scenario.running;

  writeFileSync(path, "");

  await rejection(scenario, "the file is empty");
  expect(scenario.running).toBe(before);
});

test("FileProvider rewrite leaving targets in place disturbs nothing", async () => {
  const dir = tempDir();
  const path = join(dir, "tinylb.yaml");
  const { scenario } = await startScenario(path, ["a", "b"], (text) => writeFileSync(path, text));
  const clients = await scenario.connectEach(["a", "b"]);
  const changesBefore = scenario.server.stats.setChanges;

  // The same content, the same backends in another order with a comment, then an unrelated id added and removed.
  writeFileSync(path, yaml(scenario, ["a", "b"]));
  writeFileSync(join(dir, "next.yaml"), yaml(scenario, ["b", "a"], "# reordered\n"));
  renameSync(join(dir, "next.yaml"), path);
  await waitFor("reordered file read", () => scenario.log.withMessage("config reloaded").length >= 1);
  expect(scenario.server.stats.setChanges).toBe(changesBefore);
  const infoLines = scenario.log.records.filter((record) => record.level !== "debug").map((record) => record.msg);
  expect(infoLines).toEqual(["config loaded", "backend set changed", "listening"]);

  writeFileSync(path, yaml(scenario, ["a", "b", "c"]));
  await waitFor("c added", () => scenario.server.set.get("c") !== undefined);
  writeFileSync(path, yaml(scenario, ["a", "b"]));
  await waitFor("c removed", () => scenario.server.set.get("c") === undefined);

  expect(scenario.server.stats.setChanges).toBe(changesBefore + 2);
  for (const [id, client] of clients) {
    await BalancerScenario.echo(client, `${id} undisturbed`);
    expect(client.closed).toBe(false);
  }
  expect(scenario.backends.get("a")!.accepted).toBe(1);
  expect(scenario.backends.get("b")!.accepted).toBe(1);
});

test("FileProvider SIGHUP reload reads and logs an unchanged file", async () => {
  const dir = tempDir();
  const path = join(dir, "tinylb.yaml");
  const { scenario, provider } = await startScenario(path, ["a"], (text) => writeFileSync(path, text));
  const changesBefore = scenario.server.stats.setChanges;

  expect(provider.reload("SIGHUP")).toBe(true);

  const reloaded = scenario.log.withMessage("config reloaded");
  expect(reloaded.length).toBe(1);
  expect(reloaded[0]!.reason).toBe("SIGHUP");
  expect(scenario.server.stats.setChanges).toBe(changesBefore);
  expect(provider.reloads).toBe(1);
});

test("FileProvider rate-limits unchanged SIGHUP lines", async () => {
  const dir = tempDir();
  const path = join(dir, "tinylb.yaml");
  const { scenario, provider } = await startScenario(path, ["a"], (text) => writeFileSync(path, text));

  for (let signal = 0; signal < 50; signal++) {
    expect(provider.reload("SIGHUP")).toBe(true);
  }
  writeFileSync(path, yaml(scenario, ["a", "b"]));
  expect(provider.reload("SIGHUP")).toBe(true);
  writeFileSync(path, "listen: [\n");
  for (let signal = 0; signal < 50; signal++) {
    expect(provider.reload("SIGHUP")).toBe(false);
  }

  const reloaded = scenario.log.withMessage("config reloaded");
  expect(reloaded.map((record) => [record.level, record.count, record.changed])).toEqual([
    ["info", 1, false],
    ["info", 2, undefined],
  ]);
  const rejected = scenario.log.withMessage("config reload rejected; keeping the last good backend set");
  expect(rejected.map((record) => record.level)).toEqual(["warn", "warn"]);
  expect(provider.reloads).toBe(101);
  expect(provider.reloadFailures).toBe(50);
});

test("FileProvider waits before removing every backend", async () => {
  const dir = tempDir();
  const path = join(dir, "tinylb.yaml");
  const { scenario } = await startScenario(path, ["a"], (text) => writeFileSync(path, text));
  const written = performance.now();

  writeFileSync(path, "listen: 127.0.0.1:0\n");

  await waitFor("the empty set", () => scenario.server.set.size === 0, SETTLE_MS + 5000);
  expect(performance.now() - written).toBeGreaterThanOrEqual(SETTLE_MS - 50);
  expect(scenario.log.withMessage("config file lists no backends; removing them in 1 s unless it changes again, as a save may be in progress")).toHaveLength(1);
});

test("FileProvider never applies a half-written file that lists no backends", async () => {
  const dir = tempDir();
  const path = join(dir, "tinylb.yaml");
  const { scenario } = await startScenario(path, ["a"], (text) => writeFileSync(path, text));

  // A slow writer: the start of the file, a pause longer than the quiet period, then the rest.
  writeFileSync(path, "listen: 127.0.0.1:0\n");
  await Bun.sleep(300);
  writeFileSync(path, yaml(scenario, ["b"]));

  await waitFor("set of b", () => scenario.running === `b=${scenario.target("b")}`);
  const sizes = scenario.log.withMessage("backend set changed").map((record) => record.count);
  expect(sizes).not.toContain(0);
});

/**
 * Starts a scenario whose file lists a, b and c, with a client of each, and returns the whole
 * file to write again and the index of b's entry, where a slow writer pauses.
 */
async function startRewriteOfThree(): Promise<{ path: string; scenario: BalancerScenario; clients: Awaited<ReturnType<BalancerScenario["connectEach"]>>; before: string; whole: string; cut: number }> {
  const path = join(tempDir(), "tinylb.yaml");
  const { scenario } = await startScenario(path, ["a", "b", "c"], (text) => writeFileSync(path, text));
  const clients = await scenario.connectEach(["a", "b", "c"]);
  const whole = yaml(scenario, ["a", "b", "c"], "# rewritten\n");

  return { path, scenario, clients, before: scenario.running, whole, cut: whole.indexOf("  - { id: b") };
}

/** Checks that the set is `before`, was applied once, and that every client still echoes. */
async function expectUndisturbed(scenario: BalancerScenario, clients: Awaited<ReturnType<BalancerScenario["connectEach"]>>, before: string): Promise<void> {
  expect(scenario.running).toBe(before);
  expect(scenario.log.withMessage("backend set changed").map((record) => record.count)).toEqual([3]);
  for (const [id, client] of clients) {
    await BalancerScenario.echo(client, `${id} undisturbed`);
    expect(client.closed).toBe(false);
  }
}

test("FileProvider never applies a file cut in its backends", async () => {
  const { path, scenario, clients, before, whole, cut } = await startRewriteOfThree();

  // A slow in-place writer: the file up to the entry of b, a pause until that part was read and 300 ms more, then the rest.
  const file = openSync(path, "w");
  writeSync(file, whole.slice(0, cut));
  await waitFor("the cut file to be read", () => scenario.log.withMessage("config file removes or retargets backends; applying it in 1 s unless it changes again, as a save may be in progress").length === 1);
  await Bun.sleep(300);
  writeSync(file, whole.slice(cut));
  closeSync(file);
  // The settle time of the cut file passes, and a slow timer gets a margin of 300 ms.
  await Bun.sleep(SETTLE_MS + 300);

  await expectUndisturbed(scenario, clients, before);
});

/**
 * Starts a Python process that opens `path` for writing, as `cat > tinylb.yaml` does, and
 * writes `first`. Each line sent to `next` then writes the next part; after `rest` it closes the file.
 */
function slowWriter(path: string, first: string, rest: string): { next(): void; exited: Promise<number> } {
  const program = "import sys\nf = open(sys.argv[1], 'w')\nf.write(sys.argv[2]); f.flush()\nsys.stdin.readline()\nf.write(sys.argv[3]); f.flush()\nsys.stdin.readline()\nf.close()\n";
  const child = Bun.spawn(["python3", "-c", program, path, first, rest], { stdin: "pipe", stdout: "inherit", stderr: "inherit" });
  cleanup.push(() => child.kill());

  return {
    next: () => {
      child.stdin.write("\n");
      void child.stdin.flush();
    },
    exited: child.exited,
  };
}

const WRITER_LINE = "config file is still open for writing; waiting until it is closed before applying it, or send SIGHUP to apply it now";

test("FileProvider waits for a writer that pauses", async () => {
  const { path, scenario, clients, before, whole, cut } = await startRewriteOfThree();

  // The writer pauses after the entry of a for more than twice the settle time.
  const writer = slowWriter(path, whole.slice(0, cut), whole.slice(cut));
  await waitFor("the writer line", () => scenario.log.withMessage(WRITER_LINE).length > 0, 2 * SETTLE_MS + 1000);
  await Bun.sleep(SETTLE_MS + 300);
  expect(scenario.running).toBe(before);
  expect(String(scenario.log.withMessage(WRITER_LINE)[0]?.writers)).toMatch(/^python3\[\d+\]$/);

  writer.next();
  writer.next();
  expect(await writer.exited).toBe(0);
  await Bun.sleep(SETTLE_MS + 300);

  await expectUndisturbed(scenario, clients, before);
});

test("FileProvider applies a removal once its writer closes", async () => {
  const dir = tempDir();
  const path = join(dir, "tinylb.yaml");
  const { scenario } = await startScenario(path, ["a", "b"], (text) => writeFileSync(path, text));

  // The writer removes b, and keeps the file open for more than the settle time.
  const writer = slowWriter(path, yaml(scenario, ["a"]), "");
  await waitFor("the writer line", () => scenario.log.withMessage(WRITER_LINE).length > 0, 2 * SETTLE_MS + 1000);
  expect(scenario.running).toBe(`a=${scenario.target("a")},b=${scenario.target("b")}`);

  writer.next();
  writer.next();
  expect(await writer.exited).toBe(0);

  await waitFor("set without b", () => scenario.running === `a=${scenario.target("a")}`, 3 * SETTLE_MS);
});

test("FileProvider never applies a file cut before a setting", async () => {
  const dir = tempDir();
  const path = join(dir, "tinylb.yaml");
  const scenario = new BalancerScenario();
  cleanup.push(() => scenario.close());
  scenario.startBackends(["a", "b"]);
  const whole = `${yaml(scenario, ["a", "b"])}connectTimeout: 7s\n`;
  writeFileSync(path, whole);
  const accepted: (number | undefined)[] = [];
  const provider = new FileProvider({ path, debounceMs: 50, pollIntervalMs: 0, logger: scenario.log.logger, onAccepted: (config) => accepted.push(config.connectTimeoutMs) });
  await scenario.start(provider);
  const dropping = "config file drops settings; applying it in 1 s unless it changes again, as a save may be in progress";

  // A slow in-place writer: every backend, a pause until that part was read and 300 ms more, then the setting after them.
  const cut = whole.indexOf("connectTimeout");
  const file = openSync(path, "w");
  writeSync(file, whole.slice(0, cut));
  await waitFor("the cut file to be read", () => scenario.log.withMessage(dropping).length === 1);
  expect(scenario.log.withMessage(dropping)[0]!.dropped).toBe("connectTimeout");
  await Bun.sleep(300);
  writeSync(file, whole.slice(cut));
  closeSync(file);
  // The settle time of the cut file passes, and a slow timer gets a margin of 300 ms.
  await Bun.sleep(SETTLE_MS + 300);

  expect(accepted).not.toContain(undefined);
  expect(provider.lastReload?.result).toBe("applied");
});

test("FileProvider never applies a file cut inside a block", async () => {
  const dir = tempDir();
  const path = join(dir, "tinylb.yaml");
  const scenario = new BalancerScenario();
  cleanup.push(() => scenario.close());
  scenario.startBackends(["a", "b"]);
  const whole = `${yaml(scenario, ["a", "b"])}probe:\n  kind: tcp\n  interval: 2s\n  fall: 30\n`;
  writeFileSync(path, whole);
  const accepted: string[] = [];
  const provider = new FileProvider({ path, debounceMs: 50, pollIntervalMs: 0, logger: scenario.log.logger, onAccepted: (config) => accepted.push(JSON.stringify(config.health)) });
  await scenario.start(provider);
  const dropping = "config file drops settings; applying it in 1 s unless it changes again, as a save may be in progress";

  // A slow in-place writer that pauses inside the last block, after "kind: tcp".
  const cut = whole.indexOf("  interval");
  const file = openSync(path, "w");
  writeSync(file, whole.slice(0, cut));
  await waitFor("the cut file to be read", () => scenario.log.withMessage(dropping).length === 1);
  expect(scenario.log.withMessage(dropping)[0]!.dropped).toBe("probe.interval,probe.fall");
  await Bun.sleep(300);
  writeSync(file, whole.slice(cut));
  closeSync(file);
  // The settle time of the cut file passes, and a slow timer gets a margin of 300 ms.
  await Bun.sleep(SETTLE_MS + 300);

  expect(accepted.length).toBeGreaterThan(0);
  for (const health of accepted) {
    expect(health).toContain("30");
    expect(health).toContain("2000");
  }
  expect(provider.lastReload?.result).toBe("applied");
});

test("FileProvider drops a setting once settled", async () => {
  const dir = tempDir();
  const path = join(dir, "tinylb.yaml");
  const scenario = new BalancerScenario();
  cleanup.push(() => scenario.close());
  scenario.startBackends(["a"]);
  writeFileSync(path, `${yaml(scenario, ["a"])}connectTimeout: 7s\n`);
  const accepted: (number | undefined)[] = [];
  const provider = new FileProvider({ path, debounceMs: 50, pollIntervalMs: 0, logger: scenario.log.logger, onAccepted: (config) => accepted.push(config.connectTimeoutMs) });
  await scenario.start(provider);
  const written = performance.now();

  writeFileSync(path, yaml(scenario, ["a"]));

  await waitFor("the file without connectTimeout applied", () => accepted.includes(undefined), SETTLE_MS + 5000);
  expect(performance.now() - written).toBeGreaterThanOrEqual(SETTLE_MS - 50);
  expect(provider.reloads).toBe(1);
});

test("FileProvider names an empty file at start", async () => {
  const dir = tempDir();
  const path = join(dir, "tinylb.yaml");
  const scenario = new BalancerScenario();
  cleanup.push(() => scenario.close());
  scenario.startBackends(["a"]);
  writeFileSync(path, "");
  const provider = new FileProvider({ path, debounceMs: 50, pollIntervalMs: 0, logger: scenario.log.logger });

  await scenario.start(provider);

  expect(scenario.log.withMessage("config file rejected at start; serving no backends from it until a good version is saved")).toHaveLength(1);
  expect(scenario.log.withMessage(REJECTED)).toHaveLength(0);
  // A good save is applied.
  writeFileSync(path, yaml(scenario, ["a"]));
  await waitFor("set of a", () => scenario.running === `a=${scenario.target("a")}`);
});

test("FileProvider applies a retarget once settled", async () => {
  const dir = tempDir();
  const path = join(dir, "tinylb.yaml");
  const { scenario, provider } = await startScenario(path, ["a", "b"], (text) => writeFileSync(path, text));
  const written = performance.now();

  writeFileSync(path, `listen: 127.0.0.1:0\nbackends:\n  - { id: a, target: "${scenario.target("a")}" }\n  - { id: b, target: "${scenario.target("c")}" }\n`);

  await waitFor("b on the target of c", () => scenario.server.set.get("b")?.target === scenario.target("c"), SETTLE_MS + 5000);
  expect(performance.now() - written).toBeGreaterThanOrEqual(SETTLE_MS - 50);
  const waiting = scenario.log.withMessage("config file removes or retargets backends; applying it in 1 s unless it changes again, as a save may be in progress");
  expect(waiting.map((record) => [record.removing, record.retargeting])).toEqual([[0, 1]]);
  expect(provider.reloads).toBe(1);
});

test("FileProvider holds a removal while rewritten", async () => {
  const dir = tempDir();
  const path = join(dir, "tinylb.yaml");
  const { scenario, provider } = await startScenario(path, ["a", "b"], (text) => writeFileSync(path, text));
  const waitLine = "config file removes or retargets backends; applying it in 1 s unless it changes again, as a save may be in progress";

  // A generator rewrites the file, without b, about every 350 ms: each rewrite restarts the wait, and one line reports it.
  for (let rewrite = 0; rewrite < 6; rewrite++) {
    const reads = provider.reloads;
    writeFileSync(path, yaml(scenario, ["a"], `# rewrite ${rewrite}\n`));
    await waitFor(`rewrite ${rewrite} read`, () => provider.reloads > reads);
    await Bun.sleep(300);
    expect(scenario.server.set.get("b")).toBeDefined();
  }
  expect(scenario.log.withMessage(waitLine)).toHaveLength(1);

  // Once the file rests for the settle time, b goes.
  await waitFor("b removed", () => scenario.server.set.get("b") === undefined, SETTLE_MS + 5000);
  expect(scenario.running).toBe(`a=${scenario.target("a")}`);
});

test("FileProvider adds backends without settling", async () => {
  const dir = tempDir();
  const path = join(dir, "tinylb.yaml");
  const { scenario } = await startScenario(path, ["a"], (text) => writeFileSync(path, text));
  const written = performance.now();

  writeFileSync(path, yaml(scenario, ["a", "b"]));

  await waitFor("b added", () => scenario.server.set.get("b") !== undefined);
  expect(performance.now() - written).toBeLessThan(SETTLE_MS);
  expect(scenario.log.withMessage("config file removes or retargets backends; applying it in 1 s unless it changes again, as a save may be in progress")).toHaveLength(0);
});

test("FileProvider watches a symlink target's folder made again", async () => {
  const dir = tempDir();
  mkdirSync(join(dir, "link"));
  mkdirSync(join(dir, "real"));
  const path = join(dir, "link", "tinylb.yaml");
  const real = join(dir, "real", "tinylb.yaml");
  const { scenario, provider } = await startScenario(path, ["a"], (text) => {
    writeFileSync(real, text);
    symlinkSync(real, path);
  });

  // A deploy replaces the folder the link points into.
  rmSync(join(dir, "real"), { recursive: true });
  await rejection(scenario, "does not exist");
  mkdirSync(join(dir, "real"));
  // The folder is back but the file is not yet: the reload that the folder's return causes
  // must come and go before the file is written.
  await waitFor("the dangling link's folder to be watched", () => provider.watchedFolders.includes(join(dir, "real")));
  writeFileSync(real, yaml(scenario, ["b"]));

  // Far sooner than the 30 s re-read, which this provider does not run (pollIntervalMs 0).
  await waitFor("set of b", () => scenario.running === `b=${scenario.target("b")}`, 5000);
});
