/**
 * ServiceNotifier sending to a real AF_UNIX datagram socket, which a Python stand-in for
 * systemd's notify socket binds (see NotifyReceiver).
 */
import { afterEach, expect, test } from "bun:test";
import { join } from "node:path";
import { sendDatagram } from "../src/notify-socket.ts";
import { ServiceNotifier } from "../src/service-notifier.ts";
import { trackChild } from "./support/child-processes.ts";
import { readLines } from "./support/line-reader.ts";
import { LogLines } from "./support/log-lines.ts";
import { NotifyReceiver } from "./support/notify-receiver.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { waitFor } from "./support/wait.ts";

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

/** Returns a sender that records what it sent, and fails with EAGAIN while `full` is true, as a full receive queue does. */
function queueSender(): { send: (address: string, message: string) => string | undefined; sent: string[]; full: boolean } {
  const queue = {
    sent: [] as string[],
    full: true,
    send: (_address: string, message: string): string | undefined => {
      if (queue.full) {
        return "EAGAIN";
      }
      queue.sent.push(message);

      return undefined;
    },
  };

  return queue;
}

test("notifier resends a dropped READY", async () => {
  const logs = new LogLines();
  const queue = queueSender();
  const notifier = ServiceNotifier.fromEnvironment(logs.logger, { NOTIFY_SOCKET: "/run/test.sock" }, PID, queue.send);
  cleanup.push(() => notifier.stopping("test over"));

  notifier.reloading();
  notifier.ready("up");
  notifier.status("up, 1 connection open");
  queue.full = false;
  await waitFor("the READY=1 resent", () => queue.sent.length > 0);

  // The newer READY=1 replaced the RELOADING=1, and it carries the latest status line.
  expect(queue.sent).toEqual(["READY=1\nSTATUS=up, 1 connection open"]);
  await Bun.sleep(300);
  expect(queue.sent).toHaveLength(1);
});

test("notifier resends no dropped STATUS", async () => {
  const queue = queueSender();
  const notifier = ServiceNotifier.fromEnvironment(new LogLines().logger, { NOTIFY_SOCKET: "/run/test.sock" }, PID, queue.send);
  queue.full = false;
  notifier.ready("up");
  queue.full = true;
  notifier.status("down");
  queue.full = false;
  await Bun.sleep(300);

  expect(queue.sent).toEqual(["READY=1\nSTATUS=up"]);
});

test("notifier warns at each outage", async () => {
  const logs = new LogLines();
  const queue = queueSender();
  const notifier = ServiceNotifier.fromEnvironment(logs.logger, { NOTIFY_SOCKET: "/run/test.sock" }, PID, queue.send);

  notifier.ready("up");
  notifier.status("still up");
  queue.full = false;
  notifier.status("up again");
  queue.full = true;
  notifier.status("down");
  queue.full = false;
  notifier.status("fine");

  const levels = logs.records.filter((record) => String(record.msg).includes("service manager")).map((record) => [record.level, record.msg]);
  expect(levels).toEqual([
    ["warn", "sending a notification to the service manager failed; later failures are logged at debug until one succeeds"],
    ["debug", "sending a notification to the service manager failed"],
    ["info", "notifications reach the service manager again"],
    ["warn", "sending a notification to the service manager failed; later failures are logged at debug until one succeeds"],
    ["info", "notifications reach the service manager again"],
  ]);
  notifier.stopping("test over");
});

/** Python receiver that binds argv[1] with a small buffer, reads nothing until a line arrives on stdin, then prints each datagram. */
const PAUSED_RECEIVER = `
import json, socket, sys
receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
receiver.bind(sys.argv[1])
print(json.dumps("bound"), flush=True)
sys.stdin.readline()
while True:
    print(json.dumps(receiver.recv(4096).decode()), flush=True)
`;

test("notifier resends READY once a full queue drains", async () => {
  const socket = join(workDir, "full.sock");
  const child = trackChild(Bun.spawn(["python3", "-c", PAUSED_RECEIVER, socket], { stdin: "pipe", stdout: "pipe", stderr: "inherit" }));
  cleanup.push(async () => {
    child.kill();
    await child.exited;
  });
  const received: string[] = [];
  void readLines(child.stdout, (line) => received.push(JSON.parse(line) as string));
  await waitFor("the receiver to bind", () => received.includes("bound"));
  // Fill the receive queue: the kernel's max_dgram_qlen or the 4 KiB buffer ends it.
  let filled = false;
  for (let index = 0; index < 10_000 && !filled; index++) {
    filled = sendDatagram(socket, `FILLER=${index}`) === "EAGAIN";
  }
  expect(filled).toBe(true);

  const logs = new LogLines();
  const notifier = notifierFor({ NOTIFY_SOCKET: socket }, logs);
  notifier.ready("up");
  expect(logs.withMessage("sending a notification to the service manager failed; later failures are logged at debug until one succeeds")).toHaveLength(1);
  child.stdin.write("read\n");
  await child.stdin.flush();

  await waitFor("the READY=1 resent", () => received.includes("READY=1\nSTATUS=up"), 10_000);
  expect(logs.withMessage("notifications reach the service manager again")).toHaveLength(1);
});
