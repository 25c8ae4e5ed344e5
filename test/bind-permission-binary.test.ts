/**
 * End-to-end tests of `dist/tinylb check` and a start, both run as user nobody, on addresses
 * that this user may not bind. The check must fail with the start's error, or for a listen
 * address, which a socket unit may pass bound, warn with it. The start must fail before it binds
 * a listener when it can check the address first. The tests need root and
 * setpriv, to run the binary as another user and with or without one capability.
 */
import { expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { unprivilegedPortStart } from "../src/bind-permission.ts";
import { asNobody, canDropPrivileges } from "./support/as-nobody.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { BINARY, runTinylb } from "./support/tinylb-process.ts";

if (!canDropPrivileges) {
  console.log("skipping the bind permission tests: they need root, to start tinylb as user nobody, and setpriv");
}

const directory = tempDirectory("tinylb-bind-permission-");

/** Runs dist/tinylb as user nobody, without capabilities. */
const AS_NOBODY = asNobody([BINARY]);

/** Runs dist/tinylb as user nobody with CAP_NET_BIND_SERVICE as its only capability. */
const AS_NOBODY_WITH_BIND = asNobody(["--inh-caps=+net_bind_service", "--ambient-caps=+net_bind_service", BINARY]);

/** A port below the default ip_unprivileged_port_start. No test binds it: every start here fails before or at the bind. */
const LOW_PORT = 81;

/** The first port that needs no privilege, from net.ipv4.ip_unprivileged_port_start. */
const PORT_START = unprivilegedPortStart();

/** Whether LOW_PORT and the port above it need CAP_NET_BIND_SERVICE here, as the low port tests expect. */
const canTestLowPorts = canDropPrivileges && PORT_START > LOW_PORT + 1;

/** Makes a folder of root with mode 0755 in the test's folder, which user nobody may enter but not write. */
function readOnlyFolder(name: string): string {
  // tempDirectory makes a folder that only root may enter.
  chmodSync(directory, 0o755);
  const folder = join(directory, name);
  mkdirSync(folder, { mode: 0o755 });
  chmodSync(folder, 0o755);

  return folder;
}

/** Runs `tinylb check` and a start with `args` as user nobody and returns both results. */
async function checkAndStart(args: string[], command = AS_NOBODY): Promise<[Awaited<ReturnType<typeof runTinylb>>, Awaited<ReturnType<typeof runTinylb>>]> {
  const check = await runTinylb(["check", ...args], { command, cwd: "/" });
  const start = await runTinylb(args, { command, cwd: "/" });

  return [check, start];
}

test.skipIf(!canDropPrivileges)("check rejects an admin socket nobody cannot create", async () => {
  const folder = readOnlyFolder("admin-read-only");
  for (const socket of [join(folder, "admin.sock"), join(folder, "missing", "admin.sock")]) {
    const args = ["--listen", "127.0.0.1:0", "--backend", "a=127.0.0.1:9", "--admin", `unix:${socket}`];

    const [check, start] = await checkAndStart(args);

    expect(check.stderr).toBe(`tinylb: admin API listen on unix:${socket} failed: permission denied: this user cannot create a socket in ${join(socket, "..")} (EACCES)\n`);
    expect(check.stdout).toBe("");
    expect(check.exitCode).toBe(1);
    // The start fails on the same check before it binds a listener, so it logs nothing else.
    expect(start.stderr).toBe(check.stderr);
    expect(start.exitCode).toBe(1);
    expect(existsSync(socket)).toBe(false);
  }
});

// A socket unit may bind such a listen address and pass it, which a check cannot see, so the check only warns.
test.skipIf(!canDropPrivileges)("check warns of a Unix listen folder nobody cannot write", async () => {
  const socket = join(readOnlyFolder("listen-read-only"), "lb.sock");
  const args = ["--listen", `unix:${socket}`, "--backend", "a=127.0.0.1:9", "--admin", "off"];

  const [check, start] = await checkAndStart(args);

  const cause = `permission denied: this user cannot create a socket in ${join(socket, "..")} (EACCES)`;
  expect(check.stderr).toContain(`listen on unix:${socket} will fail unless the service manager passes its socket: ${cause}`);
  expect(check.stdout).toBe("config OK: 1 backend, 1 listener\n");
  expect(check.exitCode).toBe(0);
  expect(start.stderr).toEndWith(`tinylb: listen on unix:${socket} failed: ${cause}\n`);
  expect(start.exitCode).toBe(1);
});

test.skipIf(!canTestLowPorts)("check warns of a low listen port without the capability", async () => {
  const args = ["--listen", `127.0.0.1:${LOW_PORT}`, "--backend", "a=127.0.0.1:9", "--admin", "off"];

  const [check, start] = await checkAndStart(args);

  const cause = `permission denied; ports below ${PORT_START} need root or CAP_NET_BIND_SERVICE (EACCES)`;
  expect(check.stderr).toContain(`listen on 127.0.0.1:${LOW_PORT} will fail unless the service manager passes its socket: ${cause}`);
  expect(check.stdout).toBe("config OK: 1 backend, 1 listener\n");
  expect(check.exitCode).toBe(0);
  expect(start.stderr).toEndWith(`tinylb: listen on 127.0.0.1:${LOW_PORT} failed: ${cause}\n`);
  expect(start.exitCode).toBe(1);
});

test.skipIf(!canTestLowPorts).each([
  ["admin API", "--admin"],
  ["metrics server", "--metrics"],
])("check rejects a low %s port without the capability", async (subject, flag) => {
  const args = ["--listen", "127.0.0.1:0", "--backend", "a=127.0.0.1:9", "--admin", "off", flag, `127.0.0.1:${LOW_PORT}`];

  const [check, start] = await checkAndStart(args);

  expect(check.stderr).toBe(
    `tinylb: ${subject} listen on 127.0.0.1:${LOW_PORT} failed: permission denied; ports below ${PORT_START} need root or CAP_NET_BIND_SERVICE (EACCES); pick another address with ${flag} ADDR\n`,
  );
  expect(check.stdout).toBe("");
  expect(check.exitCode).toBe(1);
  // The start fails on the same check before it binds a listener, so it logs no `listening` line.
  expect(start.stderr).toEndWith(check.stderr);
  expect(start.stderr).not.toContain("listening");
  expect(start.exitCode).toBe(1);
});

test.skipIf(!canTestLowPorts)("check accepts a low port with the capability", async () => {
  const args = ["check", "--listen", `127.0.0.1:${LOW_PORT}`, "--backend", "a=127.0.0.1:9", "--admin", "off", "--metrics", `127.0.0.1:${LOW_PORT + 1}`];

  const withCapability = await runTinylb(args, { command: AS_NOBODY_WITH_BIND, cwd: "/" });
  const asRoot = await runTinylb(args);

  expect(withCapability.stdout).toBe(`config OK: 1 backend, 1 listener, metrics on 127.0.0.1:${LOW_PORT + 1}\n`);
  expect(withCapability.stderr).toBe("");
  expect(withCapability.exitCode).toBe(0);
  expect(asRoot.stdout).toBe(withCapability.stdout);
  expect(asRoot.exitCode).toBe(0);
});

test.skipIf(!canDropPrivileges)("check accepts a high port and a writable folder", async () => {
  const folder = join(directory, "nobody-writable");
  mkdirSync(folder, { mode: 0o777 });
  chmodSync(directory, 0o755);
  chmodSync(folder, 0o777);
  const args = ["check", "--listen", `127.0.0.1:${Math.max(PORT_START, 1)}`, "--listen", `unix:${join(folder, "lb.sock")}`, "--backend", "a=127.0.0.1:9", "--admin", "off"];

  const check = await runTinylb(args, { command: AS_NOBODY, cwd: "/" });

  expect(check.stdout).toBe("config OK: 1 backend, 2 listeners\n");
  expect(check.stderr).toBe("");
  expect(check.exitCode).toBe(0);
});

test.skipIf(!canDropPrivileges)("check accepts a read-only folder with CAP_DAC_OVERRIDE", async () => {
  // access(2) ignores the capabilities of a user other than root, but bind(2) does not.
  const socket = join(readOnlyFolder("listen-override"), "lb.sock");
  const args = ["check", "--listen", `unix:${socket}`, "--backend", "a=127.0.0.1:9", "--admin", "off"];

  const check = await runTinylb(args, { command: asNobody(["--inh-caps=+dac_override", "--ambient-caps=+dac_override", BINARY]), cwd: "/" });

  expect(check.stdout).toBe("config OK: 1 backend, 1 listener\n");
  expect(check.stderr).toBe("");
  expect(check.exitCode).toBe(0);
});
