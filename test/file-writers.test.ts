import { afterEach, expect, test } from "bun:test";
import { closeSync, linkSync, openSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { findFileWriters } from "../src/providers/file-writers.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const step of cleanup.splice(0).reverse()) {
    step();
  }
});

/** Starts a Python process that opens `path` with `mode` and keeps it open until killed; resolves once it is open. */
async function holder(path: string, mode: "r" | "a"): Promise<number> {
  const program = "import sys, time\nf = open(sys.argv[1], sys.argv[2])\nprint('open', flush=True)\ntime.sleep(30)\n";
  const child = Bun.spawn(["python3", "-c", program, path, mode], { stdout: "pipe", stderr: "inherit" });
  cleanup.push(() => child.kill());
  const reader = child.stdout.getReader();
  await reader.read();
  reader.releaseLock();

  return child.pid;
}

test("findFileWriters finds a writing process", async () => {
  const path = join(tempDirectory("tinylb-file-writers-"), "tinylb.yaml");
  writeFileSync(path, "listen: 127.0.0.1:0\n");

  expect(await findFileWriters(path)).toEqual([]);
  const pid = await holder(path, "a");
  await waitFor("the writer", async () => (await findFileWriters(path)).length === 1);

  expect(await findFileWriters(path)).toEqual([{ pid, command: "python3" }]);
});

test("findFileWriters skips readers and itself", async () => {
  const directory = tempDirectory("tinylb-file-writers-");
  const path = join(directory, "tinylb.yaml");
  writeFileSync(path, "listen: 127.0.0.1:0\n");
  await holder(path, "r");
  const own = openSync(path, "a");
  cleanup.push(() => closeSync(own));

  expect(await findFileWriters(path)).toEqual([]);
});

test("findFileWriters follows a symlinked path", async () => {
  const directory = tempDirectory("tinylb-file-writers-");
  const path = join(directory, "real.yaml");
  writeFileSync(path, "listen: 127.0.0.1:0\n");
  symlinkSync(path, join(directory, "tinylb.yaml"));
  const pid = await holder(path, "a");

  expect(await findFileWriters(join(directory, "tinylb.yaml"))).toEqual([{ pid, command: "python3" }]);
  expect(await findFileWriters(join(directory, "missing.yaml"))).toEqual([]);
});

test("findFileWriters finds a writer through a hard link", async () => {
  const directory = tempDirectory("tinylb-file-writers-");
  const path = join(directory, "tinylb.yaml");
  writeFileSync(path, "listen: 127.0.0.1:0\n");
  linkSync(path, join(directory, "other-name.yaml"));
  const pid = await holder(join(directory, "other-name.yaml"), "a");

  expect(await findFileWriters(path)).toEqual([{ pid, command: "python3" }]);
});
