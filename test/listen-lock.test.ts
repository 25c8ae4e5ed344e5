import { afterEach, expect, test } from "bun:test";
import { type Address, formatAddress } from "../src/address.ts";
import { ListenError } from "../src/listener.ts";
import { ListenLocks } from "../src/listen-lock.ts";
import { TestBackend, TestClient } from "./support/backends.ts";
import { listenedPort, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

/** Returns a loopback address with a port that no test binds, so only the locks can clash. */
function lockOnlyAddress(): Address & { kind: "tcp" } {
  return { kind: "tcp", host: "127.0.0.1", port: 1 + Math.floor(Math.random() * 1000) };
}

test("ListenLocks rejects a second holder until released", () => {
  const address = lockOnlyAddress();
  const first = new ListenLocks();
  const second = new ListenLocks();
  cleanup.push(() => first.release(), () => second.release());

  first.acquire([address]);
  expect(() => second.acquire([address])).toThrow(ListenError);
  expect(() => second.acquire([address])).toThrow(`listen on ${formatAddress(address)} failed: the address is already in use by another tinylb`);

  first.release();
  second.acquire([address]);
});

test("ListenLocks skips port 0 and Unix addresses", () => {
  const first = new ListenLocks();
  const second = new ListenLocks();
  cleanup.push(() => first.release(), () => second.release());
  const addresses: Address[] = [
    { kind: "tcp", host: "127.0.0.1", port: 0 },
    { kind: "unix", path: "/tmp/tinylb-lock-test.sock" },
  ];

  first.acquire(addresses);
  second.acquire(addresses);
});

test("ListenLocks releases its own locks when one is held", () => {
  const free = lockOnlyAddress();
  const held: Address = { ...free, port: free.port + 1000 };
  const holder = new ListenLocks();
  const other = new ListenLocks();
  const later = new ListenLocks();
  cleanup.push(() => holder.release(), () => other.release(), () => later.release());

  holder.acquire([held]);
  expect(() => other.acquire([free, held])).toThrow(ListenError);
  // The lock of `free` that `other` took before failing was given back.
  later.acquire([free]);
});

for (const workers of ["2", "1"]) {
  test(`second tinylb with --workers ${workers} on a --workers 2 port exits 1`, async () => {
    const backend = TestBackend.echo("a");
    cleanup.push(() => backend.stop());
    const first = TinylbProcess.start(["--listen", "127.0.0.1:0", "--backend", `a=${backend.target}`, "--workers", "2"]);
    cleanup.push(() => first[Symbol.asyncDispose]());
    await first.waitForLog("tinylb started");
    const port = listenedPort(first.stderr);

    const second = TinylbProcess.start(["--listen", `127.0.0.1:${port}`, "--backend", `a=${backend.target}`, "--workers", workers]);
    cleanup.push(() => second[Symbol.asyncDispose]());
    expect(await second.process.exited).toBe(1);
    await waitFor("the second tinylb's error", () => second.stderr.includes("failed"));
    expect(second.stderr).toContain(`listen on 127.0.0.1:${port} failed`);
    expect(second.stderr).not.toContain("tinylb started");

    // The first balancer still accepts and relays every client.
    const clients: TestClient[] = [];
    for (let i = 0; i < 8; i++) {
      clients.push(await TestClient.connect(port));
    }
    cleanup.push(() => clients.forEach((client) => client.socket.terminate()));
    await waitFor("every greeting through the first tinylb", () => clients.every((client) => client.firstLine === "a"));
    clients.forEach((client) => client.socket.end());
    expect(await first.stop()).toBe(0);
  }, 30_000);
}

test("port of a stopped --workers 2 tinylb can be bound again", async () => {
  const backend = TestBackend.echo("a");
  cleanup.push(() => backend.stop());
  const first = TinylbProcess.start(["--listen", "127.0.0.1:0", "--backend", `a=${backend.target}`, "--workers", "2"]);
  cleanup.push(() => first[Symbol.asyncDispose]());
  await first.waitForLog("tinylb started");
  const port = listenedPort(first.stderr);
  expect(await first.stop()).toBe(0);

  const second = TinylbProcess.start(["--listen", `127.0.0.1:${port}`, "--backend", `a=${backend.target}`, "--workers", "2"]);
  cleanup.push(() => second[Symbol.asyncDispose]());
  await second.waitForLog("tinylb started");
  const client = await TestClient.connect(port);
  cleanup.push(() => client.socket.terminate());
  await waitFor("greeting through the second tinylb", () => client.firstLine === "a");
}, 30_000);

test.each([
  ["0.0.0.0", "127.0.0.1"],
  ["127.0.0.1", "0.0.0.0"],
  ["::", "127.0.0.1"],
  ["::1", "::"],
  ["0.0.0.0", "0.0.0.0"],
])("ListenLocks on %s rejects %s on the same port", (held, requested) => {
  const port = lockOnlyAddress().port;
  const holder = new ListenLocks();
  const other = new ListenLocks();
  cleanup.push(() => holder.release(), () => other.release());

  holder.acquire([{ kind: "tcp", host: held, port }]);
  expect(() => other.acquire([{ kind: "tcp", host: requested, port }])).toThrow(ListenError);
});

test.each([
  ["127.0.0.1", "127.0.0.2"],
  ["0.0.0.0", "::1"],
])("ListenLocks on %s allows %s on the same port", (held, requested) => {
  const port = lockOnlyAddress().port;
  const holder = new ListenLocks();
  const other = new ListenLocks();
  cleanup.push(() => holder.release(), () => other.release());

  holder.acquire([{ kind: "tcp", host: held, port }]);
  other.acquire([{ kind: "tcp", host: requested, port }]);
});

test("ListenLocks ignores a wildcard on another port", () => {
  const port = lockOnlyAddress().port;
  const holder = new ListenLocks();
  const other = new ListenLocks();
  cleanup.push(() => holder.release(), () => other.release());

  holder.acquire([{ kind: "tcp", host: "0.0.0.0", port }]);
  other.acquire([{ kind: "tcp", host: "127.0.0.1", port: port + 1 }]);
});
