import { afterEach, expect, test } from "bun:test";
import { chmodSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { adminTokenWarnings, readTokenFile } from "../src/admin-token.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { runTinylb, TinylbProcess } from "./support/tinylb-process.ts";

const directory = tempDirectory("tinylb-admin-token-");
const LONG_TOKEN = "0123456789abcdef0123456789abcdef";

const running: TinylbProcess[] = [];
afterEach(async () => {
  for (const tinylb of running.splice(0)) {
    await tinylb[Symbol.asyncDispose]();
  }
});

/** Writes `token` to `name` in the test folder with `mode`, replacing the file in one rename. */
function tokenFile(name: string, token: string, mode = 0o600): string {
  const path = join(directory, name);
  const temporary = `${path}.new`;
  writeFileSync(temporary, `${token}\n`);
  chmodSync(temporary, mode);
  renameSync(temporary, path);

  return path;
}

/** Sends `GET /v1/backends` with `token` over the admin socket and returns the status code. */
async function statusWith(socket: string, token: string): Promise<number> {
  const response = await fetch("http://localhost/v1/backends", { unix: socket, headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5000) } as RequestInit);
  await response.arrayBuffer();

  return response.status;
}

test.each([
  ["empty", "", "it is empty; write one token into it, such as with head -c 32 /dev/urandom | base64 > "],
  ["blank", "  \n ", "it is empty; write one token into it"],
  ["spaced", "two words", "it contains spaces or several lines, but it must contain one token without spaces"],
  ["lines", "first\nsecond", "it contains spaces or several lines"],
])("readTokenFile rejects a %s file, naming the fix", (name, content, expected) => {
  const path = tokenFile(name, content);

  expect(() => readTokenFile(path)).toThrow(`invalid admin token file ${path}: ${expected}`);
});

test("adminTokenWarnings names a short token and an open file", () => {
  const path = tokenFile("weak", "abc", 0o644);

  const warnings = adminTokenWarnings(path, "abc");

  expect(warnings).toHaveLength(2);
  expect(warnings[0]!.message).toBe(`the admin token is shorter than 16 bytes, so it is easy to guess; write a long random one, such as with head -c 32 /dev/urandom | base64 > ${path}`);
  expect(warnings[0]!.fields).toEqual({ file: path, bytes: 3 });
  expect(warnings[1]!.message).toBe(`the admin token file has mode 0644, so its group or others can read the token; run chmod 600 ${path}`);
  expect(warnings[1]!.fields).toEqual({ file: path, mode: "0644" });
  expect(JSON.stringify(warnings)).not.toContain('"abc"');
});

test.each([
  ["group-readable", 0o640, 1],
  ["owner-only", 0o600, 0],
  ["read-only", 0o400, 0],
])("adminTokenWarnings on a %s file", (name, mode, count) => {
  const path = tokenFile(`mode-${name}`, LONG_TOKEN, mode);

  expect(adminTokenWarnings(path, LONG_TOKEN)).toHaveLength(count);
});

test("adminTokenWarnings accepts a 16-byte token", () => {
  const path = tokenFile("sixteen", "0123456789abcdef");

  expect(adminTokenWarnings(path, "0123456789abcdef")).toEqual([]);
});

test("check and start warn about a weak token", async () => {
  const path = tokenFile("weak-binary", "short", 0o644);
  const socket = join(directory, "weak.sock");
  const args = ["--listen", "127.0.0.1:0", "--backend", "a=127.0.0.1:9", "--admin", `unix:${socket}`, "--admin-token-file", path];

  const check = await runTinylb(["check", ...args]);
  expect(check.exitCode).toBe(0);
  expect(check.stderr).toContain("the admin token is shorter than 16 bytes, so it is easy to guess");
  expect(check.stderr).toContain(`the admin token file has mode 0644, so its group or others can read the token; run chmod 600 ${path}`);

  const tinylb = TinylbProcess.start([...args, "--shutdown-grace", "0"]);
  running.push(tinylb);
  // Both warnings come after "tinylb started", one line at a time.
  await tinylb.waitForLog("the admin token is shorter than 16 bytes");
  await tinylb.waitForLog("run chmod 600");
  expect(tinylb.stderr).not.toContain("short\n");
  expect(tinylb.stderr).not.toContain("=short");
});

test("start with a strong token warns nothing about it", async () => {
  const path = tokenFile("strong", LONG_TOKEN);
  const socket = join(directory, "strong.sock");

  const tinylb = TinylbProcess.start(["--listen", "127.0.0.1:0", "--backend", "a=127.0.0.1:9", "--admin", `unix:${socket}`, "--admin-token-file", path, "--shutdown-grace", "0"]);
  running.push(tinylb);
  await tinylb.waitForLog("tinylb started");

  expect(tinylb.stderr).not.toContain("admin token");
});

test("SIGHUP applies a rotated token", async () => {
  const first = LONG_TOKEN;
  const second = "fedcba9876543210fedcba9876543210";
  const path = tokenFile("rotated", first);
  const socket = join(directory, "rotated.sock");
  const tinylb = TinylbProcess.start(["--listen", "127.0.0.1:0", "--backend", "a=127.0.0.1:9", "--admin", `unix:${socket}`, "--admin-token-file", path, "--shutdown-grace", "0", "--log-level", "debug"]);
  running.push(tinylb);
  await tinylb.waitForLog("tinylb started");
  expect(await statusWith(socket, first)).toBe(200);

  // 1: a new token in the file applies after SIGHUP, and the old one is rejected.
  tokenFile("rotated", second);
  tinylb.signal("SIGHUP");
  await tinylb.waitForLog("admin token replaced; requests need the token now in the file");
  expect(await statusWith(socket, first)).toBe(401);
  expect(await statusWith(socket, second)).toBe(200);

  // 2: the same token again is logged at debug only.
  tinylb.signal("SIGHUP");
  await tinylb.waitForLog("admin token file re-read; the token is unchanged");

  // 3: an empty file keeps the running token, so the check is never turned off.
  tokenFile("rotated", "");
  tinylb.signal("SIGHUP");
  await tinylb.waitForLog("admin token file re-read failed; requests still need the running token");
  expect(await statusWith(socket, second)).toBe(200);
  expect(await statusWith(socket, "")).toBe(401);

  expect(tinylb.stderr).not.toContain(first);
  expect(tinylb.stderr).not.toContain(second);
  expect(await tinylb.stop()).toBe(0);
});
