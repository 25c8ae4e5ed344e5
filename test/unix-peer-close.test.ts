/**
 * Unix socket peers that close early. Bun 1.4.4 reports the end and the close of a Unix socket
 * peer together, and a write to a Unix socket whose peer closed fails (EPIPE) where TCP would
 * send and get a reset back. Each case here lost bytes before tinylb handled it:
 *
 * - a Unix backend that writes its reply and closes before it reads the request, as a banner
 *   service or a server that turns clients away with an error line does;
 * - a client of a Unix listener that writes a request and closes while its dial is in flight,
 *   as a fire-and-forget client does.
 *
 * A client that writes only after the Unix backend's reply and FIN reached it is reset, as a TCP
 * backend would reset it and a direct client of the Unix socket would get EPIPE.
 */
import { afterEach, expect, test } from "bun:test";
import { join } from "node:path";
import type { Socket } from "bun";
import { createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import { Server } from "../src/server.ts";
import { StalledListener } from "./support/stalled-listener.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { waitFor } from "./support/wait.ts";

const REPLY = "-ERR max number of clients reached\r\n";
/** Clients of each case; a race decides each one, so several give it the chance to fail. */
const CLIENTS = 20;

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

/** Starts a Unix backend that writes REPLY and closes each connection at once, without reading. */
function startRejectingBackend(): string {
  const path = join(tempDirectory("tinylb-early-reply-"), "backend.sock");
  const listener = Bun.listen({
    unix: path,
    socket: {
      open(socket) {
        socket.write(REPLY);
        socket.end();
      },
      data() {},
    },
  });
  cleanup.push(() => listener.stop(true));

  return path;
}

interface Outcome {
  received: string;
  error: string | undefined;
}

/** Connects, writes a request at once and returns what arrives before the socket closes, and how it closed. */
async function request(options: { unix: string } | { hostname: string; port: number }): Promise<Outcome> {
  let received = "";
  const { promise, resolve } = Promise.withResolvers<Outcome>();
  const socket = await Bun.connect({
    ...options,
    socket: {
      data(_socket, chunk) {
        received += chunk.toString();
      },
      close(_socket, error) {
        resolve({ received, error: error === undefined ? undefined : ((error as { code?: string }).code ?? error.message) });
      },
    },
  } as Parameters<typeof Bun.connect>[0]);
  socket.write("PING\r\n");
  const timer = setTimeout(() => socket.end(), 2000);

  return promise.finally(() => clearTimeout(timer));
}

/** Starts a TCP backend that records the bytes of each connection when its FIN arrives. */
function startRecordingBackend(): { target: string; requests: string[] } {
  const requests: string[] = [];
  const received = new Map<Socket<undefined>, string>();
  const listener = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    socket: {
      data(socket, chunk) {
        received.set(socket, (received.get(socket) ?? "") + chunk.toString());
      },
      end(socket) {
        requests.push(received.get(socket) ?? "");
        received.delete(socket);
        socket.end();
      },
    },
  });
  cleanup.push(() => listener.stop(true));

  return { target: `127.0.0.1:${listener.port}`, requests };
}

/** Runs a Python client that connects to the Unix socket at `path`, sends one line and closes. */
async function fireAndForget(path: string): Promise<void> {
  const program = 'import socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\ns.sendall(b"fire\\n")\ns.close()';
  const child = Bun.spawn(["python3", "-c", program, path], { stdout: "inherit", stderr: "inherit" });
  expect(await child.exited).toBe(0);
}

test("direct Unix client reads early reply", async () => {
  const path = startRejectingBackend();

  for (let i = 0; i < 3; i++) {
    expect(await request({ unix: path })).toEqual({ received: REPLY, error: undefined });
  }
});

/** Starts a balancer on a loopback TCP port over the rejecting Unix backend, and returns it and its port. */
async function startOverRejectingBackend(): Promise<{ server: Server; port: number }> {
  const path = startRejectingBackend();
  const server = new Server({ listen: [{ kind: "tcp", host: "127.0.0.1", port: 0 }] });
  server.applySet(new BackendSet([createBackend("unix", `unix:${path}`)]));
  await server.start();
  cleanup.push(() => server.shutdown(0));
  const address = server.listeners[0]!.address;

  return { server, port: address.kind === "tcp" ? address.port : 0 };
}

test("relay delivers Unix backend early reply", async () => {
  const { server, port } = await startOverRejectingBackend();

  const outcomes: Outcome[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    outcomes.push(await request({ hostname: "127.0.0.1", port }));
  }
  await waitFor("the pool to empty", () => server.activeCount === 0);

  expect(outcomes).toEqual(new Array(CLIENTS).fill({ received: REPLY, error: undefined }));
});

test("Unix client request survives close while dialing", async () => {
  const recorder = startRecordingBackend();
  // Backend "a" never completes a connect, so the client is still dialing when it closes.
  const blackHole = await StalledListener.start();
  cleanup.push(() => blackHole.stop());
  const path = join(tempDirectory("tinylb-fire-"), "lb.sock");
  const server = new Server({ listen: [{ kind: "unix", path }], connectTimeoutMs: 300 });
  server.applySet(new BackendSet([createBackend("a", blackHole.target), createBackend("b", recorder.target)]));
  await server.start();
  cleanup.push(() => server.shutdown(0));

  await fireAndForget(path);
  // The wait ends without an error, so that the assert below names what arrived.
  await waitFor("backend b to receive the request", () => recorder.requests.length > 0, 3000).catch(() => {});

  expect(recorder.requests).toEqual(["fire\n"]);
  await waitFor("the pool to empty", () => server.activeCount === 0);
});

test("relay delivers every fire-and-forget Unix client", async () => {
  const recorder = startRecordingBackend();
  const path = join(tempDirectory("tinylb-fire-"), "lb.sock");
  const server = new Server({ listen: [{ kind: "unix", path }] });
  server.applySet(new BackendSet([createBackend("b", recorder.target)]));
  await server.start();
  cleanup.push(() => server.shutdown(0));

  for (let i = 0; i < CLIENTS; i++) {
    await fireAndForget(path);
  }
  // The wait ends without an error, so that the assert below names how many arrived.
  await waitFor("backend b to receive every request", () => recorder.requests.length === CLIENTS, 3000).catch(() => {});

  expect(recorder.requests).toEqual(new Array(CLIENTS).fill("fire\n"));
  await waitFor("the pool to empty", () => server.activeCount === 0);
});

interface LateClient {
  received: string;
  ended: boolean;
  closed: boolean;
}

/** Starts a balancer over the rejecting Unix backend and connects a TCP client that reads the reply and its FIN. */
async function clientAfterReply(): Promise<{ server: Server; socket: Socket<LateClient> }> {
  const { server, port } = await startOverRejectingBackend();
  const socket = await Bun.connect<LateClient>({
    hostname: "127.0.0.1",
    port,
    allowHalfOpen: true,
    data: { received: "", ended: false, closed: false },
    socket: {
      data: (own, chunk) => void (own.data.received += chunk.toString()),
      end: (own) => void (own.data.ended = true),
      close: (own) => void (own.data.closed = true),
      error() {},
    },
  });
  cleanup.push(() => socket.terminate());
  await waitFor("the reply and its FIN", () => socket.data.received === REPLY && socket.data.ended);

  return { server, socket };
}

test("late write to closed Unix backend resets", async () => {
  const { server, socket } = await clientAfterReply();

  for (let i = 0; i < 5 && !socket.data.closed; i++) {
    socket.write(`request ${i}\r\n`);
    await Bun.sleep(50);
  }
  await waitFor("the client to be closed", () => socket.data.closed, 5000).catch(() => {});

  expect(socket.data.closed).toBe(true);
  await waitFor("the pool to empty", () => server.activeCount === 0);
});

test("upload to closed Unix backend is reset", async () => {
  const { socket } = await clientAfterReply();

  // Up to 64 MiB in 64 KiB writes, for at most 5 s, without reading.
  const chunk = new Uint8Array(64 * 1024).fill(120);
  let accepted = 0;
  const deadline = performance.now() + 5000;
  while (accepted < 64 * 1024 * 1024 && !socket.data.closed && performance.now() < deadline) {
    const written = socket.write(chunk);
    if (written > 0) {
      accepted += written;
    } else {
      await Bun.sleep(1);
    }
  }

  // The reset comes at the first write that reaches the backend, so the client can fill little more than the socket buffers.
  expect(socket.data.closed).toBe(true);
  expect(accepted).toBeLessThan(16 * 1024 * 1024);
});
