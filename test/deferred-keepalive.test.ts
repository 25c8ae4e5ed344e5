import { afterEach, expect, test } from "bun:test";
import type { Socket, TCPSocketListener } from "bun";
import { DeferredKeepalive, KEEPALIVE_DELAY_MS, type KeepaliveCandidate } from "../src/deferred-keepalive.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const step of cleanup.splice(0).reverse()) {
    step();
  }
});

/** Listens on loopback and returns the listener with a function that connects a socket to it. */
function loopback(): { listener: TCPSocketListener<undefined>; connect: () => Promise<Socket<undefined>> } {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  cleanup.push(() => listener.stop(true));
  const connect = async (): Promise<Socket<undefined>> => {
    const socket = await Bun.connect({ hostname: "127.0.0.1", port: listener.port, socket: { data() {} } });
    cleanup.push(() => socket.terminate());

    return socket;
  };

  return { listener, connect };
}

function hasKeepaliveTimer(socket: Socket<undefined>): boolean {
  const filter = `( sport = :${socket.localPort} )`;

  return Bun.spawnSync(["ss", "-tnoH", "state", "established", filter]).stdout.toString().includes("timer:(keepalive");
}

/** Returns a candidate for the batch with `socket` as its backend socket, not handled yet. */
function candidate(socket: Socket<undefined> | null): KeepaliveCandidate {
  return { tcpBackendSocket: socket as Socket<unknown> | null, backendKeepaliveDone: false };
}

test("batch skips a closed connection", async () => {
  const { connect } = loopback();
  const [kept, closed] = [await connect(), await connect()];
  const [keptConnection, closedConnection] = [candidate(kept), candidate(closed)];
  // Only the kept connection is still open when the batch runs.
  const keepalive = new DeferredKeepalive(30_000, () => [keptConnection]);
  cleanup.push(() => keepalive.stop());
  keepalive.add(keptConnection);
  keepalive.add(closedConnection);

  await waitFor("keepalive on the kept socket", () => hasKeepaliveTimer(kept), KEEPALIVE_DELAY_MS + 2000);
  expect(keptConnection.backendKeepaliveDone).toBe(true);
  expect(hasKeepaliveTimer(closed)).toBe(false);
  expect(closedConnection.backendKeepaliveDone).toBe(false);
});

test("batch skips a connection already handled", async () => {
  const { connect } = loopback();
  const [fresh, handled] = [await connect(), await connect()];
  const [freshConnection, handledConnection] = [candidate(fresh), candidate(handled)];
  handledConnection.backendKeepaliveDone = true;
  const keepalive = new DeferredKeepalive(30_000, () => [freshConnection, handledConnection]);
  cleanup.push(() => keepalive.stop());
  keepalive.add(freshConnection);

  await waitFor("keepalive on the fresh socket", () => hasKeepaliveTimer(fresh), KEEPALIVE_DELAY_MS + 2000);
  expect(hasKeepaliveTimer(handled)).toBe(false);
});

/** Returns a DeferredKeepalive that takes `open` as the open connections, and a count of the batches it ran. */
function countedBatch(keepaliveMs: number, open: KeepaliveCandidate[]): { keepalive: DeferredKeepalive; batches: () => number } {
  let batches = 0;
  const keepalive = new DeferredKeepalive(keepaliveMs, () => {
    batches++;

    return open;
  });
  cleanup.push(() => keepalive.stop());

  return { keepalive, batches: () => batches };
}

test("batch marks a Unix socket connection handled", async () => {
  const unix = candidate(null);
  const { keepalive, batches } = countedBatch(30_000, [unix]);
  keepalive.add(unix);

  await waitFor("the batch", () => batches() === 1, KEEPALIVE_DELAY_MS + 2000);
  expect(unix.backendKeepaliveDone).toBe(true);
});

test("batch skips a connection added while off", async () => {
  const { connect } = loopback();
  const socket = await connect();
  const connection = candidate(socket);
  const { keepalive, batches } = countedBatch(0, [connection]);
  keepalive.add(connection);
  // A later batch, started after keepalive was turned on, leaves this connection alone.
  keepalive.keepaliveMs = 30_000;
  keepalive.add(candidate(null));

  await waitFor("the batch", () => batches() === 1, KEEPALIVE_DELAY_MS + 2000);
  expect(connection.backendKeepaliveDone).toBe(true);
  expect(hasKeepaliveTimer(socket)).toBe(false);
});

test("batch does not keep a closed connection in memory", async () => {
  const { connect } = loopback();
  const socket = await connect();
  const keepalive = new DeferredKeepalive(30_000, () => []);
  cleanup.push(() => keepalive.stop());

  // Built in a function of its own, so that no variable of this test refers to the connection.
  const schedule = (): WeakRef<object> => {
    const connection = { ...candidate(socket), buffers: [new Uint8Array(1024)] };
    keepalive.add(connection);

    return new WeakRef(connection);
  };
  const reference = schedule();
  Bun.gc(true);

  // The batch has not run yet and is scheduled, but it does not refer to the connection.
  expect(reference.deref()).toBeUndefined();
});
