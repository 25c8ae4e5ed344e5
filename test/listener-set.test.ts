import { afterEach, expect, test } from "bun:test";
import type { Socket, SocketHandler } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Address } from "../src/address.ts";
import { ListenError } from "../src/listener.ts";
import { ListenerSet } from "../src/listener-set.ts";
import { LogLines } from "./support/log-lines.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const step of cleanup.splice(0).reverse()) {
    step();
  }
});

/** Handlers that count accepted clients and close each at once. */
function countingHandlers(): { handlers: SocketHandler<undefined>; accepted: () => number } {
  let accepted = 0;
  const handlers: SocketHandler<undefined> = {
    open(socket) {
      accepted++;
      socket.end();
    },
    data() {},
  };

  return { handlers, accepted: () => accepted };
}

function listenerSet(logs = new LogLines()): ListenerSet<undefined> {
  const set = new ListenerSet<undefined>(logs.logger, false);
  cleanup.push(() => set.stop());

  return set;
}

function temporaryDirectory(): string {
  const directory = mkdtempSync(join(tmpdir(), "tinylb-listener-set-"));
  cleanup.push(() => rmSync(directory, { recursive: true, force: true }));

  return directory;
}

/** Connects to `address` and returns true, or false when the connect fails. */
async function connects(address: Address): Promise<boolean> {
  const handlers: SocketHandler<undefined> = { data() {} };
  try {
    const socket: Socket<undefined> =
      address.kind === "unix" ? await Bun.connect({ unix: address.path, socket: handlers }) : await Bun.connect({ hostname: address.host, port: address.port, socket: handlers });
    socket.end();

    return true;
  } catch {
    return false;
  }
}

test("ListenerSet binds every address and logs each", async () => {
  const logs = new LogLines();
  const set = listenerSet(logs);
  const { handlers, accepted } = countingHandlers();
  const unixPath = join(temporaryDirectory(), "in.sock");

  await set.bind([{ kind: "tcp", host: "127.0.0.1", port: 0 }, { kind: "unix", path: unixPath }], handlers);

  expect(set.listeners.length).toBe(2);
  const tcp = set.listeners[0]!;
  expect(tcp.address.kind).toBe("tcp");
  expect(tcp.address.kind === "tcp" ? tcp.address.port : 0).toBeGreaterThan(0);
  expect(set.listeners[1]!.name).toBe(`unix:${unixPath}`);
  expect(logs.withMessage("listening").map((record) => record.listener)).toEqual([tcp.name, `unix:${unixPath}`]);

  expect(await connects(tcp.address)).toBe(true);
  expect(await connects(set.listeners[1]!.address)).toBe(true);
  await waitFor("both clients to be accepted", () => accepted() === 2);
  expect(set.acceptPaused).toBe(false);
  expect(set.acceptPauses).toBe(0);
});

test("ListenerSet stop closes every listener", async () => {
  const set = listenerSet();
  const { handlers } = countingHandlers();
  await set.bind([{ kind: "tcp", host: "127.0.0.1", port: 0 }], handlers);
  const address = set.listeners[0]!.address;

  set.stop();

  expect(set.listeners.length).toBe(0);
  expect(await connects(address)).toBe(false);
});

test("ListenerSet stops bound listeners when a later bind fails", async () => {
  const { handlers } = countingHandlers();
  const holder = listenerSet();
  await holder.bind([{ kind: "tcp", host: "127.0.0.1", port: 0 }], handlers);
  const boundAddress = holder.listeners[0]!.address;
  const unixPath = join(temporaryDirectory(), "first.sock");
  const set = listenerSet();

  const failure = await set.bind([{ kind: "unix", path: unixPath }, boundAddress], handlers).then(
    () => undefined,
    (error: unknown) => error,
  );

  expect(failure).toBeInstanceOf(ListenError);
  expect((failure as ListenError).message).toContain(`listen on ${holder.listeners[0]!.name} failed`);
  expect(set.listeners.length).toBe(0);
  expect(await connects({ kind: "unix", path: unixPath })).toBe(false);
});

// Assumes the test process uses far fewer descriptors than its limit (ulimit -n), as under a default limit of 1024.
test("ListenerSet guard keeps listening with descriptors free", async () => {
  const set = listenerSet();
  const { handlers, accepted } = countingHandlers();
  await set.bind([{ kind: "tcp", host: "127.0.0.1", port: 0 }], handlers);

  set.guardDescriptors(1);

  expect(set.acceptPaused).toBe(false);
  expect(set.acceptPauses).toBe(0);
  expect(await connects(set.listeners[0]!.address)).toBe(true);
  await waitFor("the client to be accepted", () => accepted() === 1);
});
