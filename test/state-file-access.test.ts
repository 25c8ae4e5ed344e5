/**
 * `tinylb check` run as user nobody against state files and folders of root: the warnings
 * of `stateFileAccessProblems`, and that the check writes nothing.
 */
import { expect, test } from "bun:test";
import { chmodSync, chownSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { asNobody, canDropPrivileges, NOBODY_UID } from "./support/as-nobody.ts";
import { mkfifo } from "./support/fifo.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { BINARY } from "./support/tinylb-process.ts";
import { within } from "./support/wait.ts";

const directory = tempDirectory("tinylb-state-access-");

if (!canDropPrivileges) {
  console.log("skipping the state file access tests: they need root, to run tinylb check as another user, and setpriv");
}

const USER = `uid ${NOBODY_UID}, the user running this check`;

/** Makes a folder of root with `mode` and, unless `fileOwner` is undefined, a state file with mode 0600 in it. Returns the file's path. */
function stateFolder(name: string, mode: number, fileOwner?: number): string {
  chmodSync(directory, 0o755);
  const folder = join(directory, name);
  mkdirSync(folder);
  chmodSync(folder, mode);
  const path = join(folder, "state.json");
  if (fileOwner !== undefined) {
    writeFileSync(path, JSON.stringify({ version: 1, backends: [] }), { mode: 0o600 });
    chownSync(path, fileOwner, fileOwner);
  }

  return path;
}

/** Runs `tinylb check` with `--state-file path` as user nobody and returns its exit code and output. */
async function checkAsNobody(path: string): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const args = ["check", "--listen", "127.0.0.1:0", "--backend", "a=127.0.0.1:9", "--admin", "off", "--state-file", path];
  const child = Bun.spawn(asNobody([BINARY, ...args]), { stdin: "ignore", stdout: "pipe", stderr: "pipe", cwd: "/" });
  try {
    const [stdout, stderr, exitCode] = await within("tinylb check to exit", Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]), 15_000);

    return { exitCode, stdout, stderr };
  } finally {
    child.kill("SIGKILL");
  }
}

/** Returns the messages of the WARN lines in `stderr`, without the time stamp and the fields. */
function warnings(stderr: string): string[] {
  return [...stderr.matchAll(/WARN +(.*) component=main file=/g)].map((match) => match[1]!);
}

test.skipIf(!canDropPrivileges)("check warns about a folder it cannot write", async () => {
  const path = stateFolder("read-only", 0o755);

  const { exitCode, stdout, stderr } = await checkAsNobody(path);

  expect(warnings(stderr)).toEqual([
    `the folder ${join(directory, "read-only")} of the state file is not writable and searchable (EACCES) by ${USER}, so a start as this user cannot save the running set; give the user tinylb runs as write and search (x) permission on it`,
  ]);
  expect(stdout).toBe("config OK: 1 backend, 1 listener\n");
  expect(exitCode).toBe(0);
  expect(readdirSync(join(directory, "read-only"))).toEqual([]);
});

test.skipIf(!canDropPrivileges)("check warns about a file it cannot read", async () => {
  const path = stateFolder("unreadable", 0o777, 0);

  const { exitCode, stderr } = await checkAsNobody(path);

  expect(warnings(stderr)).toEqual([
    `the state file ${path} is not readable (EACCES) by ${USER}, so a start as this user ignores its saved backends and moves it to ${path}.bad; make it readable by the user tinylb runs as`,
  ]);
  expect(exitCode).toBe(0);
  expect(readdirSync(join(directory, "unreadable"))).toEqual(["state.json"]);
});

test.skipIf(!canDropPrivileges)("check warns about an unreadable file in a read-only folder", async () => {
  const path = stateFolder("unreadable-read-only", 0o755, 0);

  const { exitCode, stderr } = await checkAsNobody(path);

  // The folder denies the rename to FILE.bad, so the file warning promises no move.
  expect(warnings(stderr)).toEqual([
    `the folder ${join(directory, "unreadable-read-only")} of the state file is not writable and searchable (EACCES) by ${USER}, so a start as this user cannot save the running set; give the user tinylb runs as write and search (x) permission on it`,
    `the state file ${path} is not readable (EACCES) by ${USER}, so a start as this user ignores its saved backends, leaves the file in place and saves nothing, because it cannot write the folder; make it readable by the user tinylb runs as`,
  ]);
  expect(exitCode).toBe(0);
});

test.skipIf(!canDropPrivileges)("check warns about a file of another user in a sticky folder", async () => {
  const path = stateFolder("sticky", 0o1777, 0);

  const { exitCode, stderr } = await checkAsNobody(path);

  // One warning: a start cannot move the file aside, as the other user's file it cannot read.
  expect(warnings(stderr)).toEqual([
    `the state file ${path} is not readable (EACCES) by ${USER} and belongs to uid 0 in the sticky folder ${join(directory, "sticky")}, so a start as this user ignores its saved backends, can neither move it aside nor replace it, and saves nothing; give the file to the user tinylb runs as (chown)`,
  ]);
  expect(exitCode).toBe(0);
});

test.skipIf(!canDropPrivileges)("check warns about a readable file in a sticky folder", async () => {
  const path = stateFolder("sticky-readable", 0o1777, 0);
  chmodSync(path, 0o644);

  const { exitCode, stderr } = await checkAsNobody(path);

  expect(warnings(stderr)).toEqual([
    `the state file ${path} belongs to uid 0 in the sticky folder ${join(directory, "sticky-readable")}, so ${USER} cannot replace it; give the file to the user tinylb runs as (chown)`,
  ]);
  expect(exitCode).toBe(0);
});

test.skipIf(!canDropPrivileges)("check warns about a FIFO in a sticky folder", async () => {
  const path = stateFolder("sticky-fifo", 0o1777);
  mkfifo(path);

  const { exitCode, stderr } = await checkAsNobody(path);

  expect(warnings(stderr)).toEqual([
    `the state file ${path} is a FIFO (named pipe), not a regular file, and belongs to uid 0 in the sticky folder ${join(directory, "sticky-fifo")}, so a start as ${USER} ignores it, can neither move it aside nor replace it, and saves nothing; give the file to the user tinylb runs as (chown), or pick another path`,
  ]);
  expect(exitCode).toBe(0);
});

test.skipIf(!canDropPrivileges)("check is silent about a usable state file", async () => {
  const path = stateFolder("usable", 0o1777, NOBODY_UID);

  const { exitCode, stderr } = await checkAsNobody(path);

  expect(stderr).toBe("");
  expect(exitCode).toBe(0);
});
