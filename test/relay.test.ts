import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import type { Connection } from "../src/connection.ts";
import { Server } from "../src/server.ts";
import { Peer, PeerListener, patternBytes, sha256 } from "./support/peers.ts";
import { waitFor } from "./support/wait.ts";

const MIB = 1024 * 1024;
/** Backstop for one test; the waits inside carry the real deadlines. */
const TEST_TIMEOUT_MS = 120_000;

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
}, TEST_TIMEOUT_MS);

/** Starts a server that balances one PeerListener backend, and connects a client through it. */
async function relay(onAccept?: (peer: Peer) => void): Promise<{ server: Server; backend: PeerListener; client: Peer; upstream: Peer; connection: Connection }> {
  const backend = new PeerListener(onAccept);
  cleanup.push(() => backend.stop());
  const server = new Server({ listen: [{ kind: "tcp", host: "127.0.0.1", port: 0 }] });
  server.applySet(new BackendSet([createBackend("only", backend.target)]));
  await server.start();
  cleanup.push(() => server.shutdown(0));

  const address = server.listeners[0]!.address;
  const client = await Peer.connect(address.kind === "tcp" ? address.port : 0);
  cleanup.push(() => client.socket.terminate());
  const upstream = await backend.next();
  await waitFor("connection to register", () => server.pool.size === 1);
  const connection = [...server.pool.connections()][0]!;

  return { server, backend, client, upstream, connection };
}

/** Samples the connection's queued bytes every millisecond until stopped; returns the peak. */
function samplePending(connection: Connection): () => number {
  let peak = 0;
  const timer = setInterval(() => {
    peak = Math.max(peak, connection.pendingBytes);
  }, 1);

  return () => {
    clearInterval(timer);

    return peak;
  };
}

test("relay carries 16 MiB each way through slow readers", async () => {
  const { server, client, upstream, connection } = await relay();
  const upload = patternBytes(16 * MIB, 11);
  const download = patternBytes(16 * MIB, 22);
  client.keepText = false;
  upstream.keepText = false;
  client.slowReadMs = 2;
  upstream.slowReadMs = 2;
  const peak = samplePending(connection);

  await Promise.all([client.send(upload, { shutdown: true }), upstream.send(download, { shutdown: true })]);
  await waitFor("both ends to read every byte and the FIN", () => client.ended && upstream.ended, 60_000);

  expect(upstream.receivedAtEnd).toBe(upload.byteLength);
  expect(client.receivedAtEnd).toBe(download.byteLength);
  expect(upstream.digest()).toBe(sha256(upload));
  expect(client.digest()).toBe(sha256(download));
  // The slow readers made tinylb queue bytes, and never more than one read per direction.
  const queuedPeak = peak();
  expect(queuedPeak).toBeGreaterThan(0);
  expect(queuedPeak).toBeLessThanOrEqual(2 * 512 * 1024);
  await waitFor("pool to empty", () => server.activeCount === 0);
}, TEST_TIMEOUT_MS);

test("relay carries 16 MiB each way over Unix sockets", async () => {
  const directory = mkdtempSync(join(tmpdir(), "tinylb-relay-"));
  cleanup.push(() => rmSync(directory, { recursive: true, force: true }));
  const backend = new PeerListener(undefined, join(directory, "backend.sock"));
  cleanup.push(() => backend.stop());
  const listenPath = join(directory, "listen.sock");
  const server = new Server({ listen: [{ kind: "unix", path: listenPath }] });
  server.applySet(new BackendSet([createBackend("only", backend.target)]));
  await server.start();
  cleanup.push(() => server.shutdown(0));

  const client = await Peer.connect(listenPath);
  cleanup.push(() => client.socket.terminate());
  const upstream = await backend.next();
  await waitFor("connection to register", () => server.pool.size === 1);
  const peak = samplePending([...server.pool.connections()][0]!);
  const upload = patternBytes(16 * MIB, 77);
  const download = patternBytes(16 * MIB, 88);
  for (const peer of [client, upstream]) {
    peer.keepText = false;
    peer.slowReadMs = 2;
  }

  await Promise.all([client.send(upload, { shutdown: true }), upstream.send(download, { shutdown: true })]);
  await waitFor("both ends to read every byte and the FIN", () => client.ended && upstream.ended, 60_000);

  expect(upstream.receivedAtEnd).toBe(upload.byteLength);
  expect(client.receivedAtEnd).toBe(download.byteLength);
  expect(upstream.digest()).toBe(sha256(upload));
  expect(client.digest()).toBe(sha256(download));
  expect(peak()).toBeLessThanOrEqual(2 * 512 * 1024);
  await waitFor("pool to empty", () => server.activeCount === 0);
}, TEST_TIMEOUT_MS);

test("relay keeps pending bytes bounded while the client does not read", async () => {
  const { server, client, upstream, connection } = await relay();
  client.keepText = false;
  client.socket.pause();
  const download = patternBytes(64 * MIB, 33);
  const peak = samplePending(connection);
  void upstream.send(download, { shutdown: true });

  // The backend stalls once the kernel buffers and one queued read are full.
  let last = -1;
  await waitFor("the backend's writes to stall", async () => {
    const before = upstream.sent;
    await Bun.sleep(200);
    const stalled = upstream.sent === before && before === last;
    last = before;

    return stalled;
  }, 30_000);
  const stalledAt = upstream.sent;
  const pendingWhileStalled = connection.pendingBytes;

  expect(stalledAt).toBeLessThan(download.byteLength);
  expect(pendingWhileStalled).toBeGreaterThan(0);
  expect(pendingWhileStalled).toBeLessThanOrEqual(512 * 1024);

  client.socket.resume();
  await waitFor("the client to read every byte", () => client.ended, 60_000);

  expect(client.receivedAtEnd).toBe(download.byteLength);
  expect(client.digest()).toBe(sha256(download));
  expect(peak()).toBeLessThanOrEqual(512 * 1024);
  client.shutdown();
  await waitFor("pool to empty", () => server.activeCount === 0);
}, TEST_TIMEOUT_MS);

test("relay delivers the reply after the client half-closes", async () => {
  const reply = patternBytes(4 * MIB, 44);
  const { server, client, upstream } = await relay((peer) => {
    // Reply only once the request and its FIN have arrived.
    const timer = setInterval(() => {
      if (peer.ended) {
        clearInterval(timer);
        void peer.send(reply, { shutdown: true });
      }
    }, 5);
  });
  client.keepText = false;

  await client.send(new TextEncoder().encode("GET /all HTTP/1.0\r\n\r\n"), { shutdown: true });
  await waitFor("the backend to see the request and FIN", () => upstream.ended);
  expect(upstream.text).toBe("GET /all HTTP/1.0\r\n\r\n");

  await waitFor("the client to read the reply and EOF", () => client.ended, 30_000);
  expect(client.receivedAtEnd).toBe(reply.byteLength);
  expect(client.digest()).toBe(sha256(reply));
  await waitFor("pool to empty", () => server.activeCount === 0);
  expect(client.closeError).toBeUndefined();
}, TEST_TIMEOUT_MS);

test("relay keeps the upload flowing after the backend half-closes", async () => {
  const { server, client, upstream } = await relay((peer) => {
    void peer.send(new TextEncoder().encode("banner\n"), { shutdown: true });
  });
  upstream.keepText = false;

  await waitFor("the client to read the banner and EOF", () => client.ended);
  expect(client.text).toBe("banner\n");

  const upload = patternBytes(8 * MIB, 55);
  upstream.slowReadMs = 1;
  await client.send(upload, { shutdown: true });
  await waitFor("the backend to read the whole upload and EOF", () => upstream.ended, 30_000);

  expect(upstream.receivedAtEnd).toBe(upload.byteLength);
  expect(upstream.digest()).toBe(sha256(upload));
  await waitFor("pool to empty", () => server.activeCount === 0);
  expect(upstream.closeError).toBeUndefined();
}, TEST_TIMEOUT_MS);

test("relay passes a client reset to the backend", async () => {
  const { server, client, upstream } = await relay();
  await client.send(new TextEncoder().encode("partial"));
  await waitFor("bytes to reach the backend", () => upstream.received === 7);

  const resetAt = performance.now();
  client.socket.terminate();
  await waitFor("the backend socket to close", () => upstream.closed, 2000);

  expect(upstream.closeError?.code).toBe("ECONNRESET");
  expect(upstream.ended).toBe(false);
  expect(performance.now() - resetAt).toBeLessThan(2000);
  await waitFor("pool to empty", () => server.activeCount === 0);
}, TEST_TIMEOUT_MS);

test("relay passes a backend reset to the client", async () => {
  const { server, client, upstream } = await relay();
  await upstream.send(new TextEncoder().encode("partial"));
  await waitFor("bytes to reach the client", () => client.received === 7);

  upstream.socket.terminate();
  await waitFor("the client socket to close", () => client.closed, 2000);

  expect(client.closeError?.code).toBe("ECONNRESET");
  expect(client.ended).toBe(false);
  await waitFor("pool to empty", () => server.activeCount === 0);
}, TEST_TIMEOUT_MS);

test("relay drops a paused client's reset promptly", async () => {
  const { server, client, upstream, connection } = await relay();
  upstream.socket.pause();
  upstream.keepText = false;
  void client.send(patternBytes(64 * MIB, 66));

  // Fill the backend's buffers so that tinylb queues bytes and pauses the client socket.
  let last = -1;
  await waitFor("the client's writes to stall", async () => {
    const before = client.sent;
    await Bun.sleep(200);
    const stalled = client.sent === before && before === last;
    last = before;

    return stalled;
  }, 30_000);
  expect(connection.pendingBytes).toBeGreaterThan(0);

  client.socket.terminate();
  await waitFor("tinylb to drop the connection while the backend is not reading", () => server.activeCount === 0, 2000);

  // A paused Bun socket reports the reset once it reads again.
  upstream.socket.resume();
  await waitFor("the backend socket to close", () => upstream.closed, 2000);
  expect(upstream.closeError?.code).toBe("ECONNRESET");
  expect(upstream.ended).toBe(false);
}, TEST_TIMEOUT_MS);

test("relay keeps other connections intact when one resets", async () => {
  const replies = new Map<Peer, Uint8Array>();
  const backend = new PeerListener((peer) => {
    // Each backend peer sends 8 MiB of its own pattern, seeded by accept order.
    const reply = patternBytes(8 * MIB, 100 + backend.peers.length);
    replies.set(peer, reply);
    void peer.send(reply, { shutdown: true });
  });
  cleanup.push(() => backend.stop());
  const server = new Server({ listen: [{ kind: "tcp", host: "127.0.0.1", port: 0 }] });
  server.applySet(new BackendSet([createBackend("only", backend.target)]));
  await server.start();
  cleanup.push(() => server.shutdown(0));
  const address = server.listeners[0]!.address;
  const port = address.kind === "tcp" ? address.port : 0;

  const clients: Peer[] = [];
  for (let i = 0; i < 3; i++) {
    const client = await Peer.connect(port);
    cleanup.push(() => client.socket.terminate());
    client.keepText = false;
    client.slowReadMs = 1;
    clients.push(client);
  }
  const [survivorA, victim, survivorB] = clients as [Peer, Peer, Peer];
  await waitFor("the victim to read some bytes", () => victim.received > 0);
  victim.socket.terminate();

  for (const survivor of [survivorA, survivorB]) {
    survivor.shutdown();
  }
  await waitFor("both survivors to read everything", () => survivorA.ended && survivorB.ended, 60_000);

  // Each survivor got one backend's whole reply; dials may finish in any order.
  const sent = new Set([...replies.values()].map((reply) => sha256(reply)));
  const digests = [survivorA.digest(), survivorB.digest()];
  expect(survivorA.receivedAtEnd).toBe(8 * MIB);
  expect(survivorB.receivedAtEnd).toBe(8 * MIB);
  expect(sent.has(digests[0]!)).toBe(true);
  expect(sent.has(digests[1]!)).toBe(true);
  expect(digests[0]).not.toBe(digests[1]);

  // The victim's backend socket is closed too. Whether its peer gets ECONNRESET, EPIPE or a
  // plain close depends on whether it had already shut down its write side: Bun 1.4.4 reports
  // a reset that arrives after shutdown() as a close without an error.
  const victimBackend = backend.peers.find((peer) => !digests.includes(sha256(replies.get(peer)!)));
  expect(victimBackend).toBeDefined();
  await waitFor("the victim's backend socket to close", () => victimBackend!.closed);
  await waitFor("pool to empty", () => server.activeCount === 0);
}, TEST_TIMEOUT_MS);
