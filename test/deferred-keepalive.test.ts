import { afterEach, expect, test } from "bun:test";
import type { Socket, TCPSocketListener } from "bun";
import { DeferredKeepalive, KEEPALIVE_DELAY_MS } from "../src/deferred-keepalive.ts";
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

test("batch skips a deleted connection", async () => {
  const { connect } = loopback();
  const [kept, closed] = [await connect(), await connect()];
  const keepalive = new DeferredKeepalive(30_000);
  cleanup.push(() => keepalive.stop());
  const [keptConnection, closedConnection] = [{}, {}];
  keepalive.add(kept, keptConnection);
  keepalive.add(closed, closedConnection);
  keepalive.delete(closedConnection);

  await waitFor("keepalive on the kept socket", () => hasKeepaliveTimer(kept), KEEPALIVE_DELAY_MS + 2000);
  expect(hasKeepaliveTimer(closed)).toBe(false);
});

test("batch does not keep a deleted connection in memory", async () => {
  const { connect } = loopback();
  const socket = await connect();
  const keepalive = new DeferredKeepalive(30_000);
  cleanup.push(() => keepalive.stop());

  // Built in a function of its own, so that no variable of this test refers to the connection.
  const queue = (): WeakRef<object> => {
    const connection = { buffers: [new Uint8Array(1024)] };
    keepalive.add(socket, connection);
    keepalive.delete(connection);

    return new WeakRef(connection);
  };
  const reference = queue();
  Bun.gc(true);

  // The batch has not run yet: only it could still refer to the connection.
  expect(reference.deref()).toBeUndefined();
});
