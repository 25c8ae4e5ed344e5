/**
 * The smallest Bun relay that does what tinylb's data path does: accept, dial the next
 * target round-robin, relay both ways and pass FIN on. It has no timeouts, no limits, no
 * backpressure and no logs, so it is not a balancer. It measures the floor that Bun itself
 * sets for CPU per connection, to compare with tinylb's and HAProxy's.
 *
 * Usage: bun bench/minimal-relay.ts LISTEN_PORT TARGET_PORT...   (all on 127.0.0.1)
 */
import type { Socket, SocketHandler } from "bun";

interface Side {
  peer: Socket<Side> | null;
  /** Chunks read from the client before the backend socket opened. */
  early: Uint8Array[];
}

const [listenPort, ...targetPorts] = process.argv.slice(2).map(Number);
if (listenPort === undefined || targetPorts.length === 0) {
  throw new Error("usage: bun bench/minimal-relay.ts LISTEN_PORT TARGET_PORT...");
}
let next = 0;

const backendHandlers: SocketHandler<Side> = {
  open(backend) {
    const client = backend.data.peer!;
    client.data.peer = backend;
    for (const chunk of client.data.early) {
      backend.write(chunk);
    }
    client.data.early = [];
  },
  data(backend, chunk) {
    backend.data.peer?.write(chunk);
  },
  end(backend) {
    backend.data.peer?.shutdown();
  },
  close(backend) {
    backend.data.peer?.end();
  },
};

Bun.listen<Side>({
  hostname: "127.0.0.1",
  port: listenPort,
  allowHalfOpen: true,
  socket: {
    open(client) {
      client.data = { peer: null, early: [] };
      const port = targetPorts[next++ % targetPorts.length]!;
      void Bun.connect<Side>({ hostname: "127.0.0.1", port, allowHalfOpen: true, data: { peer: client, early: [] }, socket: backendHandlers });
    },
    data(client, chunk) {
      if (client.data.peer === null) {
        client.data.early.push(chunk);
      } else {
        client.data.peer.write(chunk);
      }
    },
    end(client) {
      client.data.peer?.shutdown();
    },
    close(client) {
      client.data.peer?.end();
    },
  },
});
