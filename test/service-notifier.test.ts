/**
 * ServiceNotifier sending to a real AF_UNIX datagram socket, which a Python stand-in for
 * systemd's notify socket binds (see NotifyReceiver).
 */
import { afterEach, expect, test } from "bun:test";
import { join } from "node:path";
import { ServiceNotifier } from "../src/service-notifier.ts";
import { LogLines } from "./support/log-lines.ts";
import { NotifyReceiver } from "./support/notify-receiver.ts";
import { tempDirectory } from "./support/temp-directory.ts";

const workDir = tempDirectory("tinylb-notify-");
const PID = 4242;
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

async function receiver(address: string): Promise<NotifyReceiver> {
  const started = await NotifyReceiver.start(address);
  cleanup.push(() => started.stop());

  return started;
}

function notifierFor(env: Record<string, string | undefined>, logs = new LogLines()): ServiceNotifier {
  const notifier = ServiceNotifier.fromEnvironment(logs.logger, env, PID);
  cleanup.push(() => notifier.stopping("test over"));

  return notifier;
}

test("notifier sends to a socket path", async () => {
  const path = join(workDir, "notify.sock");
  const notify = await receiver(path);
  const notifier = notifierFor({ NOTIFY_SOCKET: path });

  notifier.ready("1 of 2 backends up, 0 connections open");
  notifier.status("2 of 2 backends up, 0 connections open");
  notifier.stopping("draining 0 open connections");
  await notify.waitForMessage("STOPPING=1");

  expect(notify.messages).toEqual([
    "READY=1\nSTATUS=1 of 2 backends up, 0 connections open",
    "STATUS=2 of 2 backends up, 0 connections open",
    "STOPPING=1\nSTATUS=draining 0 open connections",
  ]);
});

test("notifier sends to an abstract name", async () => {
  const name = `@tinylb-test-notify-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const notify = await receiver(name);
  notifierFor({ NOTIFY_SOCKET: name }).ready("up");

  await notify.waitForMessage("READY=1");
  expect(notify.messages).toEqual(["READY=1\nSTATUS=up"]);
});

test("notifier sends the monotonic time at a reload", async () => {
  const path = join(workDir, "reload.sock");
  const notify = await receiver(path);
  notifierFor({ NOTIFY_SOCKET: path }).reloading();

  const reloading = await notify.waitForMessage("RELOADING=1");
  const sentUsec = Number(/^RELOADING=1\nMONOTONIC_USEC=(\d+)$/.exec(reloading.message)?.[1]);
  // Sent before it arrived, on the same clock, and not long before.
  expect(sentUsec).toBeLessThanOrEqual(reloading.monotonicUsec);
  expect(reloading.monotonicUsec - sentUsec).toBeLessThan(5_000_000);
});

test("notifier removes the variables", () => {
  const env: Record<string, string | undefined> = { NOTIFY_SOCKET: "/run/systemd/notify", WATCHDOG_USEC: "1000000", WATCHDOG_PID: String(PID), PATH: "/bin" };
  ServiceNotifier.fromEnvironment(new LogLines().logger, env, PID);

  expect(env).toEqual({ PATH: "/bin" });
});

test("notifier pings the watchdog at half the interval", async () => {
  const path = join(workDir, "watchdog.sock");
  const notify = await receiver(path);
  const notifier = notifierFor({ NOTIFY_SOCKET: path, WATCHDOG_USEC: "100000", WATCHDOG_PID: String(PID) });

  notifier.ready("up");
  await Bun.sleep(500);
  notifier.stopping("down");
  await notify.waitForMessage("STOPPING=1");
  const pings = notify.messages.filter((message) => message === "WATCHDOG=1").length;

  // Every 50 ms for 500 ms; the machine may be busy, so fewer arrive.
  expect(pings).toBeGreaterThanOrEqual(4);
  expect(pings).toBeLessThanOrEqual(11);
  expect(notify.messages.at(-1)).toBe("STOPPING=1\nSTATUS=down");
});

test("notifier skips a watchdog for another pid", async () => {
  const path = join(workDir, "other-pid.sock");
  const notify = await receiver(path);
  const notifier = notifierFor({ NOTIFY_SOCKET: path, WATCHDOG_USEC: "20000", WATCHDOG_PID: "1" });

  notifier.ready("up");
  await Bun.sleep(100);
  notifier.stopping("down");
  await notify.waitForMessage("STOPPING=1");

  expect(notify.messages).toEqual(["READY=1\nSTATUS=up", "STOPPING=1\nSTATUS=down"]);
});

test("notifier warns once about a missing socket", () => {
  const logs = new LogLines();
  const notifier = notifierFor({ NOTIFY_SOCKET: join(workDir, "missing.sock") }, logs);

  notifier.ready("up");
  notifier.status("still up");

  const failures = logs.records.filter((record) => String(record.msg).startsWith("sending a notification to the service manager failed"));
  expect(failures.map((record) => [record.level, record.err])).toEqual([
    ["warn", "ENOENT"],
    ["debug", "ENOENT"],
  ]);
});

test.each([
  ["a relative path", "notify.sock", "invalid NOTIFY_SOCKET; not sending notifications to the service manager"],
  ["a vsock address", "vsock:2:1234", "invalid NOTIFY_SOCKET; not sending notifications to the service manager"],
  ["a long path", `/${"x".repeat(107)}`, "invalid NOTIFY_SOCKET; not sending notifications to the service manager"],
])("notifier rejects %s", (_case, address, message) => {
  const logs = new LogLines();
  const notifier = notifierFor({ NOTIFY_SOCKET: address }, logs);

  notifier.ready("up");
  expect(notifier.enabled).toBe(false);
  expect(logs.messages()).toEqual([message]);
});

test("notifier warns about an invalid watchdog interval", () => {
  const logs = new LogLines();
  notifierFor({ NOTIFY_SOCKET: join(workDir, "unused.sock"), WATCHDOG_USEC: "1.5s" }, logs);

  expect(logs.withMessage("invalid WATCHDOG_USEC; not sending watchdog notifications")).toHaveLength(1);
});
