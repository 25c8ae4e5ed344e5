/**
 * dist/tinylb with NOTIFY_SOCKET set, as systemd starts a `Type=notify` service, sending to a
 * Python stand-in for systemd's notify socket (see NotifyReceiver).
 */
import { afterEach, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { TestBackend } from "./support/backends.ts";
import { NotifyReceiver } from "./support/notify-receiver.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor, within } from "./support/wait.ts";

const workDir = tempDirectory("tinylb-notify-binary-");
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

function start(args: string[], env: Record<string, string>): TinylbProcess {
  const tinylb = TinylbProcess.start(args, { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env } });
  cleanup.push(() => tinylb[Symbol.asyncDispose]());

  return tinylb;
}

test("tinylb notifies ready, reloading and stopping", async () => {
  const backend = TestBackend.echo("a");
  cleanup.push(() => backend.stop());
  const socket = join(workDir, "notify.sock");
  const notify = await NotifyReceiver.start(socket);
  cleanup.push(() => notify.stop());
  const config = join(workDir, "tinylb.yaml");
  writeFileSync(config, `listen: 127.0.0.1:0\nbackends:\n  - { id: a, target: "${backend.target}" }\n`);
  const tinylb = start(["--config", config, "--no-watch-config", "--workers", "2"], { NOTIFY_SOCKET: socket });

  await notify.waitForMessage("READY=1");
  expect(tinylb.stderr).toContain("tinylb started");
  expect(notify.messages).toEqual(["READY=1\nSTATUS=1 of 1 backends up, 0 connections open"]);

  tinylb.signal("SIGHUP");
  await waitFor("RELOADING=1, then READY=1", () => notify.messages.length >= 3);
  expect(notify.messages[1]).toMatch(/^RELOADING=1\nMONOTONIC_USEC=\d+$/);
  expect(notify.messages[2]).toBe("READY=1\nSTATUS=1 of 1 backends up, 0 connections open");

  expect(await within("tinylb to stop", tinylb.stop(), 20_000)).toBe(0);
  expect(notify.messages.slice(3)).toEqual(["STOPPING=1\nSTATUS=draining 0 open connections"]);
}, 60_000);

test("tinylb pings the watchdog", async () => {
  const backend = TestBackend.echo("a");
  cleanup.push(() => backend.stop());
  const socket = `@tinylb-test-watchdog-${process.pid}`;
  const notify = await NotifyReceiver.start(socket);
  cleanup.push(() => notify.stop());
  const tinylb = start(["--listen", "127.0.0.1:0", "--backend", `a=${backend.target}`], { NOTIFY_SOCKET: socket, WATCHDOG_USEC: "200000" });

  await notify.waitForMessage("READY=1");
  // Every 100 ms, half of WATCHDOG_USEC.
  await waitFor("two watchdog pings", () => notify.messages.filter((message) => message === "WATCHDOG=1").length >= 2);
  expect(await within("tinylb to stop", tinylb.stop(), 20_000)).toBe(0);
}, 60_000);

test("tinylb runs on with a missing notify socket", async () => {
  const backend = TestBackend.echo("a");
  cleanup.push(() => backend.stop());
  const tinylb = start(["--listen", "127.0.0.1:0", "--backend", `a=${backend.target}`], { NOTIFY_SOCKET: join(workDir, "missing.sock") });

  await tinylb.waitForLog("tinylb started");
  expect(await within("tinylb to stop", tinylb.stop(), 20_000)).toBe(0);
  const warnings = tinylb.stderr.split("\n").filter((line) => line.includes("sending a notification to the service manager failed"));
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toContain("WARN  sending a notification to the service manager failed; later failures are logged at debug until one succeeds component=main");
  expect(warnings[0]).toContain("err=ENOENT");
}, 60_000);

/** Opens a client to tinylb's listener that stays open until closed. */
async function openClient(tinylb: TinylbProcess): Promise<Bun.Socket> {
  const port = Number(/listening .*listener=127\.0\.0\.1:(\d+)/.exec(tinylb.stderr)![1]);

  return await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
}

test("tinylb updates the status line as connections change", async () => {
  const backend = TestBackend.echo("a");
  cleanup.push(() => backend.stop());
  const socket = join(workDir, "status.sock");
  const notify = await NotifyReceiver.start(socket);
  cleanup.push(() => notify.stop());
  const tinylb = start(["--listen", "127.0.0.1:0", "--backend", `a=${backend.target}`, "--admin", "off", "--shutdown-grace", "20s"], { NOTIFY_SOCKET: socket });
  await notify.waitForMessage("READY=1");

  const first = await openClient(tinylb);
  const second = await openClient(tinylb);
  await notify.waitForMessage("STATUS=1 of 1 backends up, 2 connections open");

  tinylb.signal("SIGTERM");
  await notify.waitForMessage("STOPPING=1\nSTATUS=draining 2 open connections");
  first.end();
  await notify.waitForMessage("STATUS=draining 1 open connection");
  // A SIGHUP during the drain neither reloads nor sends RELOADING=1 or READY=1.
  tinylb.signal("SIGHUP");
  await tinylb.waitForLog("SIGHUP received while draining; not reloading");
  // The drain ends with the last connection, before the next status check.
  second.end();
  expect(await within("tinylb to stop", tinylb.process.exited, 20_000)).toBe(0);

  const afterStopping = notify.messages.slice(notify.messages.findIndex((message) => message.startsWith("STOPPING=1")));
  expect(afterStopping.filter((message) => message.startsWith("RELOADING=1") || message.startsWith("READY=1"))).toEqual([]);
  expect(afterStopping.filter((message) => message.includes("backends up"))).toEqual([]);
  // Each STATUS= differs from the one before it.
  const statuses = notify.messages.map((message) => /STATUS=(.*)$/.exec(message)?.[1]).filter((status) => status !== undefined);
  expect(statuses.filter((status, index) => status === statuses[index - 1])).toEqual([]);
}, 60_000);

test("tinylb shows a rejected reload in the status line", async () => {
  const backend = TestBackend.echo("a");
  cleanup.push(() => backend.stop());
  const socket = join(workDir, "rejected.sock");
  const notify = await NotifyReceiver.start(socket);
  cleanup.push(() => notify.stop());
  const config = join(workDir, "rejected.yaml");
  const good = `listen: 127.0.0.1:0\nbackends:\n  - { id: a, target: "${backend.target}" }\n`;
  writeFileSync(config, good);
  const tinylb = start(["--config", config, "--admin", "off"], { NOTIFY_SOCKET: socket });
  await notify.waitForMessage("READY=1");

  // A save seen by the file watch, with no SIGHUP.
  writeFileSync(config, `${good}bogus: 1\n`);
  const rejected = await notify.waitForMessage("; config reload rejected at ");
  expect(rejected.message).toMatch(/^STATUS=1 of 1 backends up, 0 connections open; config reload rejected at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: invalid config .*bogus.*; serving the last good config$/);

  writeFileSync(config, good.replace("backends:", "logLevel: info\nbackends:"));
  await waitFor("the status line without the rejection", () => notify.messages.at(-1) === "STATUS=1 of 1 backends up, 0 connections open");
  expect(await within("tinylb to stop", tinylb.stop(), 20_000)).toBe(0);
}, 60_000);
