import { afterEach, expect, test } from "bun:test";
import type { TCPSocketListener, TCPSocketListenOptions } from "bun";
import type { TcpAddress } from "../src/address.ts";
import { type BoundListener, bindListener, ListenError } from "../src/listener.ts";
import { TestBackend, TestClient } from "./support/backends.ts";
import { listenedPort, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

/**
 * Listens with SO_REUSEPORT as another program would. For dist/tinylb this test process is
 * another program. For bindListener in this process it is one too, because bindListener
 * checks only addresses it has not bound itself, and SO_REUSEPORT is set per socket.
 */
function listenWithReusePort(host = "127.0.0.1", port = 0): TCPSocketListener<undefined> {
  const options: TCPSocketListenOptions<undefined> & { reusePort: boolean } = { hostname: host, port, reusePort: true, socket: { data() {} } };
  const listener = Bun.listen<undefined>(options);
  cleanup.push(() => listener.stop(true));

  return listener;
}

async function bindReused(address: TcpAddress): Promise<BoundListener> {
  const listener = await bindListener(address, { data() {} }, { reusePort: true });
  cleanup.push(() => listener.stop());

  return listener;
}

async function bindReusedError(address: TcpAddress): Promise<Error> {
  try {
    const listener = await bindReused(address);
    throw new Error(`bindListener bound ${listener.name}, expected a ListenError`);
  } catch (error) {
    expect(error).toBeInstanceOf(ListenError);

    return error as Error;
  }
}

function inUseMessage(name: string): string {
  return `listen on ${name} failed: the address is already in use, such as by another tinylb; stop that listener or pick another address (EADDRINUSE)`;
}

test("reused port rejects a foreign SO_REUSEPORT listener", async () => {
  const other = listenWithReusePort();

  const error = await bindReusedError({ kind: "tcp", host: "127.0.0.1", port: other.port });

  expect(error.message).toBe(inUseMessage(`127.0.0.1:${other.port}`));
});

test.each(["0.0.0.0", "::"])("reused port on wildcard %s rejects a foreign listener", async (host) => {
  const other = listenWithReusePort();

  const error = await bindReusedError({ kind: "tcp", host, port: other.port });

  expect(error.message).toContain(`:${other.port} failed`);
  expect(error.message).toContain("EADDRINUSE");
});

test("reused port 0 binds a free port and binds it again", async () => {
  const first = await bindReused({ kind: "tcp", host: "127.0.0.1", port: 0 });
  const port = first.address.kind === "tcp" ? first.address.port : 0;
  expect(port).toBeGreaterThan(0);

  // A second bind of an address this thread is bound to skips the check. The main thread
  // rebinds so after a descriptor-guard pause, while relay workers are still bound to the port.
  const second = await bindReused({ kind: "tcp", host: "127.0.0.1", port });
  expect(second.name).toBe(`127.0.0.1:${port}`);
});

test("reused wildcard port 0 binds", async () => {
  const listener = await bindReused({ kind: "tcp", host: "0.0.0.0", port: 0 });

  expect(listener.address.kind).toBe("tcp");
  expect(listener.address.kind === "tcp" ? listener.address.port : 0).toBeGreaterThan(0);
});

for (const workers of ["2", "1"]) {
  test(`tinylb --workers ${workers} exits 1 on a foreign SO_REUSEPORT port`, async () => {
    const backend = TestBackend.echo("a");
    cleanup.push(() => backend.stop());
    const other = listenWithReusePort();

    const tinylb = TinylbProcess.start(["--listen", `127.0.0.1:${other.port}`, "--backend", `a=${backend.target}`, "--workers", workers]);
    cleanup.push(() => tinylb[Symbol.asyncDispose]());

    expect(await tinylb.process.exited).toBe(1);
    await waitFor("the listen error", () => tinylb.stderr.includes("failed"));
    expect(tinylb.stderr).toContain(inUseMessage(`127.0.0.1:${other.port}`));
    expect(tinylb.stderr).not.toContain("tinylb started");
  }, 30_000);
}

test("tinylb --workers 2 on port 0 relays on both threads", async () => {
  const backend = TestBackend.echo("a");
  cleanup.push(() => backend.stop());
  const tinylb = TinylbProcess.start(["--listen", "127.0.0.1:0", "--backend", `a=${backend.target}`, "--workers", "2", "--log-level", "debug"]);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());
  await tinylb.waitForLog("tinylb started");
  const port = listenedPort(tinylb.stderr);

  const clients: TestClient[] = [];
  for (let i = 0; i < 24; i++) {
    clients.push(await TestClient.connect(port));
  }
  cleanup.push(() => clients.forEach((client) => client.socket.terminate()));
  await waitFor("every greeting", () => clients.every((client) => client.firstLine === "a"));

  // Worker lines carry worker=1; main-thread lines carry no worker field.
  const opened = tinylb.stderr.split("\n").filter((line) => line.includes("connection opened"));
  expect(opened.filter((line) => line.includes("worker=1")).length).toBeGreaterThan(0);
  expect(opened.filter((line) => !line.includes("worker=")).length).toBeGreaterThan(0);
}, 30_000);
