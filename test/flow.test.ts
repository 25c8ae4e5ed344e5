import { afterEach, expect, test } from "bun:test";
import type { Socket } from "bun";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Flow, UNPAUSED_QUEUE_LIMIT } from "../src/flow.ts";
import { type Peer, PeerListener, patternBytes, sha256 } from "./support/peers.ts";
import { waitFor } from "./support/wait.ts";

const MIB = 1024 * 1024;

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const step of cleanup.splice(0).reverse()) {
    step();
  }
});

/** Routes a socket's events to whichever flow the test wires up. */
interface Wiring {
  onData?: (chunk: Uint8Array) => void;
  onDrain?: () => void;
}

/** Connects a socket to a new PeerListener: the socket is under test, the peer is the far end. */
async function socketPair(wiring: Wiring): Promise<{ socket: Socket<Wiring>; peer: Peer }> {
  const listener = new PeerListener();
  cleanup.push(() => listener.stop());
  const socket = await Bun.connect<Wiring>({
    hostname: "127.0.0.1",
    port: listener.port,
    allowHalfOpen: true,
    data: wiring,
    socket: {
      data: (s, chunk) => s.data.onData?.(chunk),
      drain: (s) => s.data.onDrain?.(),
    },
  });
  cleanup.push(() => socket.terminate());

  return { socket, peer: await listener.next() };
}

/** Connects a source socket and a sink socket whose peer does not read yet, so the sink backs up. */
async function sourceAndStalledSink(): Promise<{ source: { socket: Socket<Wiring>; peer: Peer }; sink: { socket: Socket<Wiring>; peer: Peer }; sinkWiring: Wiring }> {
  const sinkWiring: Wiring = {};
  const source = await socketPair({});
  const sink = await socketPair(sinkWiring);
  sink.peer.keepText = false;
  sink.peer.socket.pause();

  return { source, sink, sinkWiring };
}

test("Flow keeps the tail of a partial write and sends it on drain", async () => {
  const { source, sink, sinkWiring } = await sourceAndStalledSink();

  const flow = new Flow(source.socket);
  flow.setSink(sink.socket);
  sinkWiring.onDrain = () => flow.flush();
  const chunk = patternBytes(16 * MIB, 7);
  flow.forward(chunk);

  // The kernel cannot take 16 MiB at once, so the tail stays queued in the flow.
  expect(flow.pendingBytes).toBeGreaterThan(0);
  expect(flow.bytes + flow.pendingBytes).toBe(chunk.byteLength);

  sink.peer.socket.resume();
  await waitFor("the sink's peer to read every byte", () => sink.peer.received === chunk.byteLength, 30_000);

  expect(sink.peer.digest()).toBe(sha256(chunk));
  expect(flow.pendingBytes).toBe(0);
  expect(flow.bytes).toBe(chunk.byteLength);
});

test("Flow queues until a sink is set, then resumes the source", async () => {
  const sourceWiring: Wiring = {};
  const source = await socketPair(sourceWiring);
  const sink = await socketPair({});
  source.socket.pause();
  const flow = new Flow(source.socket, true);
  sourceWiring.onData = (chunk) => flow.forward(chunk);

  flow.forward(new TextEncoder().encode("queued "));
  expect(flow.pendingBytes).toBe(7);

  flow.setSink(sink.socket);
  await waitFor("the queued bytes to arrive", () => sink.peer.text === "queued ");

  // Resumed: bytes sent to the source now flow through.
  await source.peer.send(new TextEncoder().encode("live"));
  await waitFor("bytes read after the resume to arrive", () => sink.peer.text === "queued live");
  expect(flow.pendingBytes).toBe(0);
});

test("Flow writes a prefix and queued bytes at once", async () => {
  const sourceWiring: Wiring = {};
  const source = await socketPair(sourceWiring);
  const sink = await socketPair({});
  const flow = new Flow(source.socket);
  sourceWiring.onData = (chunk) => flow.forward(chunk);
  flow.forward(new TextEncoder().encode("first "));
  flow.forward(new TextEncoder().encode("second "));

  // Counts the sink's writes, so the test can check that the prefix does not take one of its own.
  const writes: string[] = [];
  const countingSink = new Proxy(sink.socket, {
    get(target, property) {
      if (property === "write") {
        return (chunk: Uint8Array) => {
          writes.push(new TextDecoder().decode(chunk));

          return target.write(chunk);
        };
      }
      const value = Reflect.get(target, property);

      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  flow.setSink(countingSink, undefined, new TextEncoder().encode("PROXY UNKNOWN\r\n"));

  await waitFor("the prefix and queued bytes to arrive", () => sink.peer.text === "PROXY UNKNOWN\r\nfirst second ");
  expect(writes).toEqual(["PROXY UNKNOWN\r\nfirst second "]);
  expect(flow.bytes).toBe("PROXY UNKNOWN\r\nfirst second ".length);

  // Bytes read after the sink was set follow without another prefix.
  await source.peer.send(new TextEncoder().encode("live"));
  await waitFor("bytes read later to arrive", () => sink.peer.text === "PROXY UNKNOWN\r\nfirst second live");
});

test("Flow passes FIN on only after the queued tail", async () => {
  const { source, sink, sinkWiring } = await sourceAndStalledSink();
  const flow = new Flow(source.socket);
  flow.setSink(sink.socket);
  sinkWiring.onDrain = () => flow.flush();

  const chunk = patternBytes(16 * MIB, 8);
  flow.forward(chunk);
  flow.end();
  expect(flow.finished).toBe(false);

  sink.peer.socket.resume();
  await waitFor("the sink's peer to see FIN", () => sink.peer.ended, 30_000);

  expect(sink.peer.receivedAtEnd).toBe(chunk.byteLength);
  expect(sink.peer.digest()).toBe(sha256(chunk));
  expect(flow.finished).toBe(true);
});

test("no source file hands data to end()", () => {
  const sourceDir = join(import.meta.dir, "..", "src");
  const offenders: string[] = [];
  const files = readdirSync(sourceDir, { recursive: true, encoding: "utf8" }).filter((file) => file.endsWith(".ts"));
  for (const file of files) {
    const lines = readFileSync(join(sourceDir, file), "utf8").split("\n");
    lines.forEach((line, index) => {
      // A socket's end() with an argument writes data it may not fully send before closing.
      // A stream's end(callback) passes no data, so an arrow function argument is allowed.
      if (/\.end\(\s*(?!\(\)\s*=>)[^)\s]/.test(line) && !line.trimStart().startsWith("*") && !line.trimStart().startsWith("//")) {
        offenders.push(`${file}:${index + 1}: ${line.trim()}`);
      }
    });
  }

  expect(files.length).toBeGreaterThan(10);
  expect(offenders).toEqual([]);
});

test("Flow pauses a sinkless source only at 64 KiB", async () => {
  const sourceWiring: Wiring = {};
  const source = await socketPair(sourceWiring);
  const sink = await socketPair({});
  let pauses = 0;
  const pause = source.socket.pause.bind(source.socket);
  source.socket.pause = () => {
    pauses++;
    pause();
  };
  const flow = new Flow(source.socket);
  sourceWiring.onData = (chunk) => flow.forward(chunk);

  // A small first request is queued without pausing the source.
  await source.peer.send(patternBytes(1024, 1));
  await waitFor("the first kilobyte to be queued", () => flow.pendingBytes === 1024);
  expect(pauses).toBe(0);

  // Crossing UNPAUSED_QUEUE_LIMIT pauses it.
  const large = patternBytes(256 * 1024, 2);
  void source.peer.send(large);
  await waitFor("the queue to reach 64 KiB", () => flow.pendingBytes >= UNPAUSED_QUEUE_LIMIT);
  expect(pauses).toBe(1);

  // Once a sink is set, every byte arrives in order and the source is resumed.
  sink.peer.keepText = false;
  flow.setSink(sink.socket);
  await waitFor("all bytes at the sink", () => sink.peer.received === 1024 + large.byteLength);
  expect(sink.peer.digest()).toBe(sha256(Buffer.concat([patternBytes(1024, 1), large])));
  expect(flow.pendingBytes).toBe(0);
});

test("Flow reports a backed-up sink once", async () => {
  const { source, sink, sinkWiring } = await sourceAndStalledSink();
  const reported: Socket<unknown>[] = [];
  const flow = new Flow(source.socket);
  flow.setSink(sink.socket, (backedUp) => reported.push(backedUp));
  sinkWiring.onDrain = () => flow.flush();

  // A small write fits in the kernel's buffer, so nothing is reported.
  flow.forward(patternBytes(1024, 3));
  expect(reported).toHaveLength(0);

  // 16 MiB does not fit: the first short write reports the sink, later ones do not.
  const chunk = patternBytes(16 * MIB, 4);
  flow.forward(chunk);
  sink.peer.socket.resume();
  await waitFor("the sink's peer to read every byte", () => sink.peer.received === 1024 + chunk.byteLength, 30_000);

  expect(reported).toHaveLength(1);
  expect(reported[0]).toBe(sink.socket);
});
