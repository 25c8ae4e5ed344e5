/**
 * End-to-end tests of who may own the admin socket and its folder, with `dist/tinylb` run as
 * user nobody and a second user, uid 1234, as the attacker. Both need root and setpriv, because
 * the attack is one local user taking the socket path of another.
 */
import { afterEach, expect, test } from "bun:test";
import { chmodSync, chownSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { asNobody, asOtherUser, canDropPrivileges, NOBODY_UID, OTHER_UID } from "./support/as-nobody.ts";
import { trackChild } from "./support/child-processes.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { BINARY, runTinylb } from "./support/tinylb-process.ts";
import { waitFor, within } from "./support/wait.ts";

const ATTACKER_UID = OTHER_UID;
const directory = tempDirectory("tinylb-admin-socket-");

const running: { kill: () => void; exited: Promise<number> }[] = [];
afterEach(async () => {
  for (const child of running.splice(0)) {
    child.kill();
    await child.exited;
  }
});

/** Makes a folder under the test's folder, with `mode` and owner `uid`, that other users can reach. */
function folder(name: string, mode: number, uid: number): string {
  chmodSync(directory, 0o755);
  const path = join(directory, name);
  mkdirSync(path);
  chmodSync(path, mode);
  chownSync(path, uid, uid);

  return path;
}

/** Starts `dist/tinylb` as nobody with the default admin address and XDG_RUNTIME_DIR set to `runtime`. */
function startAsNobody(runtime: string): { stderr: () => string } {
  const child = trackChild(
    Bun.spawn(asNobody([BINARY, "--listen", "127.0.0.1:0", "--backend", "a=127.0.0.1:9", "--shutdown-grace", "0"]), {
      stdin: "ignore",
      stdout: "ignore",
      stderr: "pipe",
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", XDG_RUNTIME_DIR: runtime },
    }),
  );
  running.push(child);
  let stderr = "";
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      stderr += decoder.decode(chunk, { stream: true });
    }
  })();

  return { stderr: () => stderr };
}

test.skipIf(!canDropPrivileges)("default admin socket gets a private folder", async () => {
  const runtime = folder("runtime", 0o700, NOBODY_UID);

  const tinylb = startAsNobody(runtime);
  await waitFor("tinylb started", () => tinylb.stderr().includes("tinylb started"));

  const privateFolder = statSync(join(runtime, "tinylb"));
  expect(privateFolder.uid).toBe(NOBODY_UID);
  expect(privateFolder.mode & 0o7777).toBe(0o700);
  expect(statSync(join(runtime, "tinylb", "admin.sock")).isSocket()).toBe(true);
  expect(tinylb.stderr()).not.toContain("admin API not started");
});

test.skipIf(!canDropPrivileges)("default admin folder of another user is rejected", async () => {
  // A shared sticky folder, as /tmp is for /tmp/tinylb-UID.
  const runtime = folder("shared-runtime", 0o1777, 0);
  const squat = Bun.spawnSync(asOtherUser(["mkdir", "-m", "0777", join(runtime, "tinylb")]));
  expect(squat.exitCode).toBe(0);

  const tinylb = startAsNobody(runtime);
  await waitFor("tinylb started", () => tinylb.stderr().includes("tinylb started"));

  expect(tinylb.stderr()).toContain("admin API not started");
  expect(tinylb.stderr()).toContain(`the folder ${join(runtime, "tinylb")} is owned by uid 1234 with mode 0777, but the default admin socket folder must be owned by uid 65534`);
  expect(statSync(join(runtime, "tinylb", "admin.sock"), { throwIfNoEntry: false })).toBeUndefined();
});

test.skipIf(!canDropPrivileges)("admin command sends nothing to another user's socket", async () => {
  // A folder every user can write in, as /tmp, where another user can plant a socket.
  const shared = join(directory, "shared");
  mkdirSync(shared, { mode: 0o1777 });
  chmodSync(shared, 0o1777);
  const path = join(shared, "squatted.sock");
  let requests = 0;
  const squatter = Bun.serve({
    unix: path,
    fetch() {
      requests++;

      return Response.json({ process: {}, backends: [] });
    },
  });
  try {
    chownSync(path, ATTACKER_UID, ATTACKER_UID);
    const tokenFile = join(directory, "token");
    writeFileSync(tokenFile, "a-secret-token-of-32-characters!\n", { mode: 0o600 });

    const result = await within("tinylb add", runTinylb(["add", "x", "127.0.0.1:1", "--admin", `unix:${path}`, "--admin-token-file", tokenFile]));

    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain(`the admin socket ${path} is owned by uid 1234, not root (this user), so no request or token is sent to it`);
    expect(requests).toBe(0);
  } finally {
    await squatter.stop(true);
  }
});

test.skipIf(!canDropPrivileges)("admin command names a denied socket", async () => {
  // The socket of a balancer run as root: mode 0600 in a folder everyone may search.
  const open = folder("root-run", 0o755, 0);
  const path = join(open, "admin.sock");
  const server = Bun.serve({ unix: path, fetch: () => Response.json({ process: {}, backends: [] }) });
  try {
    chmodSync(path, 0o600);
    const child = trackChild(Bun.spawn(asOtherUser([BINARY, "status", "--admin", `unix:${path}`]), { stdin: "ignore", stdout: "pipe", stderr: "pipe" }));
    const [stderr, exitCode] = await within("tinylb status as another user", Promise.all([new Response(child.stderr).text(), child.exited]));

    expect(exitCode).toBe(1);
    expect(stderr).toContain(`this user may not connect to unix:${path} (permission denied (EACCES)); run the command as root or as the user that runs the balancer`);
    expect(stderr).not.toContain("typo");
  } finally {
    await server.stop(true);
  }
});
