import { expect, test } from "bun:test";
import { EchoBackend, FaultProcess } from "./support/fault-peers.ts";
import { waitFor } from "./support/wait.ts";

// A watch stream: the client sends a request and then only listens. When the backend goes
// away, by FIN or by reset, the client must learn it without sending anything.
test.each(["FIN", "reset"] as const)("idle client learns of a backend %s", async (how) => {
  const backend = new EchoBackend();
  await using tinylb = new FaultProcess(["--listen", "127.0.0.1:0", "--backend", `echo=${backend.target}`]);
  try {
    const port = await tinylb.port();
    const client = { received: "", endedAt: 0, closedAt: 0 };
    const socket = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      allowHalfOpen: true,
      socket: {
        data: (_socket, chunk) => {
          client.received += chunk.toString("latin1");
        },
        end: () => {
          client.endedAt = performance.now();
        },
        close: () => {
          client.closedAt = performance.now();
        },
        error() {},
      },
    });
    socket.write("watch\n");
    await waitFor("echo of the request", () => client.received === "watch\n");
    await Bun.sleep(300); // Lets the connection go idle; nothing is awaited here.

    const peer = backend.peers[0]!;
    const closedAt = performance.now();
    if (how === "FIN") {
      peer.socket.end();
    } else {
      peer.socket.terminate();
    }
    await waitFor("client to learn the backend left", () => client.endedAt !== 0 || client.closedAt !== 0, 5000);
    const learnedMs = Math.min(...[client.endedAt, client.closedAt].filter((at) => at !== 0)) - closedAt;
    console.log(`idle client learned of the backend ${how} after ${learnedMs.toFixed(1)} ms`);
    expect(learnedMs).toBeLessThan(1000);
    socket.terminate();
  } finally {
    backend.stop();
  }
}, 30_000);
