import { afterEach, expect, test } from "bun:test";
import { chmodSync, chownSync, mkdirSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { adminSocketOwnerProblem, prepareAdminSocketFolder, privateAdminFolder } from "../src/admin-socket-access.ts";
import { defaultAdminAddress } from "../src/provider-settings.ts";
import { tempDirectory } from "./support/temp-directory.ts";

/** A user who owns no file here: the attacker, or the non-root user tinylb runs as. */
const OTHER_UID = 1234;
const isRoot = process.getuid?.() === 0;

const directory = tempDirectory("tinylb-admin-access-");
const savedRuntime = process.env.XDG_RUNTIME_DIR;
afterEach(() => {
  if (savedRuntime === undefined) {
    delete process.env.XDG_RUNTIME_DIR;
  } else {
    process.env.XDG_RUNTIME_DIR = savedRuntime;
  }
});

/** Makes a new folder under the test's folder with `mode` and owner `uid`. */
function folder(name: string, mode: number, uid = 0): string {
  const path = join(directory, name);
  mkdirSync(path);
  chmodSync(path, mode);
  if (uid !== 0) {
    chownSync(path, uid, uid);
  }

  return path;
}

test("privateAdminFolder prefers XDG_RUNTIME_DIR", () => {
  process.env.XDG_RUNTIME_DIR = "/run/user/1234";
  expect(privateAdminFolder(OTHER_UID)).toBe("/run/user/1234/tinylb");

});

test("privateAdminFolder falls back to /tmp/tinylb-UID", () => {
  delete process.env.XDG_RUNTIME_DIR;
  expect(privateAdminFolder(OTHER_UID)).toBe("/tmp/tinylb-1234");

  // The XDG Base Directory Specification 0.8 requires ignoring a relative path.
  process.env.XDG_RUNTIME_DIR = "relative/run";
  expect(privateAdminFolder(OTHER_UID)).toBe("/tmp/tinylb-1234");

  // A folder too deep for a 107-byte socket path cannot hold the socket.
  process.env.XDG_RUNTIME_DIR = `/${"d".repeat(120)}`;
  expect(privateAdminFolder(OTHER_UID)).toBe("/tmp/tinylb-1234");
});

test.skipIf(!isRoot)("defaultAdminAddress of root stays under /run", () => {
  process.env.XDG_RUNTIME_DIR = "/run/user/0";
  expect(defaultAdminAddress()).toEqual({ kind: "unix", path: "/run/tinylb/admin.sock" });
});

test.skipIf(!isRoot)("prepareAdminSocketFolder accepts the user's own private folder", () => {
  const runtime = folder("runtime-own", 0o700, OTHER_UID);
  process.env.XDG_RUNTIME_DIR = runtime;
  mkdirSync(join(runtime, "tinylb"), { mode: 0o700 });
  chownSync(join(runtime, "tinylb"), OTHER_UID, OTHER_UID);

  expect(() => prepareAdminSocketFolder(join(runtime, "tinylb", "admin.sock"), OTHER_UID)).not.toThrow();
});

test.skipIf(!isRoot)("prepareAdminSocketFolder rejects a squatted private folder", () => {
  // The attacker is root here: any owner but the user tinylb runs as is rejected.
  const runtime = folder("runtime-squatted", 0o1777);
  process.env.XDG_RUNTIME_DIR = runtime;
  const squatted = join(runtime, "tinylb");
  mkdirSync(squatted);
  chmodSync(squatted, 0o777);

  expect(() => prepareAdminSocketFolder(join(squatted, "admin.sock"), OTHER_UID)).toThrow(
    `the folder ${squatted} is owned by uid 0 with mode 0777, but the default admin socket folder must be owned by uid 1234 (the user tinylb runs as), since its owner can replace the socket; remove the folder, or pass --admin unix:PATH in a folder of your own`,
  );
});

test.skipIf(!isRoot)("prepareAdminSocketFolder rejects an open private folder", () => {
  const runtime = folder("runtime-open", 0o700, OTHER_UID);
  process.env.XDG_RUNTIME_DIR = runtime;
  const open = join(runtime, "tinylb");
  mkdirSync(open);
  chmodSync(open, 0o755);
  chownSync(open, OTHER_UID, OTHER_UID);

  expect(() => prepareAdminSocketFolder(join(open, "admin.sock"), OTHER_UID)).toThrow(`the folder ${open} has mode 0755, but the default admin socket folder must have mode 0700; run chmod 700 ${open}`);
});

test.skipIf(!isRoot)("prepareAdminSocketFolder rejects a symlinked private folder", () => {
  const runtime = folder("runtime-link", 0o700, OTHER_UID);
  process.env.XDG_RUNTIME_DIR = runtime;
  const target = folder("link-target", 0o700, OTHER_UID);
  symlinkSync(target, join(runtime, "tinylb"));

  expect(() => prepareAdminSocketFolder(join(runtime, "tinylb", "admin.sock"), OTHER_UID)).toThrow(`the folder ${join(runtime, "tinylb")} is a symlink`);
});

test.skipIf(!isRoot)("prepareAdminSocketFolder rejects another user's folder", () => {
  const other = folder("other-user", 0o755, OTHER_UID);

  expect(() => prepareAdminSocketFolder(join(other, "admin.sock"))).toThrow(
    `the folder ${other} is owned by uid 1234, not root (the user tinylb runs as), and its owner can replace the socket; pick a folder of this user or of root`,
  );
});

test.each([
  ["world-writable", 0o777, "0777"],
  ["group-writable", 0o770, "0770"],
])("prepareAdminSocketFolder rejects a %s folder", (name, mode, shown) => {
  const open = folder(`open-${name}`, mode);

  expect(() => prepareAdminSocketFolder(join(open, "admin.sock"))).toThrow(
    `the folder ${open} has mode ${shown}, so other users can write in it and replace the socket; run chmod go-w ${open}, or chmod +t ${open} to set the sticky bit, or pick another folder`,
  );
});

test("prepareAdminSocketFolder accepts a sticky folder", () => {
  const sticky = folder("sticky", 0o1777);

  expect(() => prepareAdminSocketFolder(join(sticky, "admin.sock"))).not.toThrow();
});

test("prepareAdminSocketFolder creates missing folders as 0700", () => {
  const path = join(directory, "new", "deeper", "admin.sock");

  prepareAdminSocketFolder(path);

  expect(statSync(join(directory, "new", "deeper")).mode & 0o7777).toBe(0o700);
});

test.skipIf(!isRoot)("adminSocketOwnerProblem names another user's socket", () => {
  // A folder that every user can write in, such as /tmp, where another user can plant a socket.
  const shared = join(directory, "shared");
  mkdirSync(shared);
  chmodSync(shared, 0o1777);
  const path = join(shared, "foreign.sock");
  writeFileSync(path, "");
  chownSync(path, OTHER_UID, OTHER_UID);

  expect(adminSocketOwnerProblem(path)).toBe(
    `the admin socket ${path} is owned by uid 1234, not root (this user), so no request or token is sent to it, since another user may have taken the balancer's place; run the command as uid 1234 if that user runs the balancer, or pass --admin with the balancer's socket`,
  );
  expect(adminSocketOwnerProblem(path, OTHER_UID)).toBeUndefined();
});

test.skipIf(!isRoot)("adminSocketOwnerProblem lets root reach a service user's socket", () => {
  // As in the example unit: /run/tinylb belongs to the service's user, mode 0755.
  const runtime = join(directory, "service-run");
  mkdirSync(runtime, { mode: 0o755 });
  chownSync(runtime, OTHER_UID, OTHER_UID);
  const path = join(runtime, "admin.sock");
  writeFileSync(path, "");
  chownSync(path, OTHER_UID, OTHER_UID);

  expect(adminSocketOwnerProblem(path)).toBeUndefined();
  // A user other than root still refuses it.
  expect(adminSocketOwnerProblem(path, 4321)).toContain("is owned by uid 1234, neither uid 4321 (this user) nor root");
});

test("adminSocketOwnerProblem accepts root and missing sockets", () => {
  const path = join(directory, "root.sock");
  writeFileSync(path, "");

  expect(adminSocketOwnerProblem(path, OTHER_UID)).toBeUndefined();
  expect(adminSocketOwnerProblem(join(directory, "missing.sock"), OTHER_UID)).toBeUndefined();
});
