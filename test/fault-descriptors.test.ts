import { expect, test } from "bun:test";
import type { Socket } from "bun";
import { cpuTicks, EchoBackend, FaultProcess, openDescriptors } from "./support/fault-peers.ts";
import { waitFor } from "./support/wait.ts";

const DESCRIPTOR_LIMIT = 64;
/** More clients than the limit can hold, since each relayed connection takes two descriptors. */
const CLIENTS = 80;

/** Connects a client and returns it once its line is echoed, or undefined when it is refused or not served within a second. */
async function echoingClient(port: number, line: string): Promise<Socket<{ received: string }> | undefined> {
  let socket: Socket<{ received: string }>;
  try {
    socket = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      data: { received: "" },
      socket: {
        data: (own, chunk) => {
          own.data.received += chunk.toString("latin1");
        },
        error() {},
      },
    });
  } catch {
    return undefined;
  }

  return (await echoes(socket, line)) ? socket : (socket.terminate(), undefined);
}

async function echoes(socket: Socket<{ received: string }>, line: string): Promise<boolean> {
  socket.write(line);
  try {
    await waitFor(`echo of ${line.trim()}`, () => socket.data.received.includes(line), 1000);

    return true;
  } catch {
    return false;
  }
}

test.each([
  ["one thread", 1],
  ["two threads", 2],
])("descriptor exhaustion pauses accepting without spinning, %s", async (_name, workers) => {
  const backend = new EchoBackend();
  await using tinylb = new FaultProcess(["--listen", "127.0.0.1:0", "--backend", `echo=${backend.target}`, "--workers", String(workers)], { descriptorLimit: DESCRIPTOR_LIMIT });
  const held: Socket<{ received: string }>[] = [];
  try {
    const port = await tinylb.port();

    let refused = 0;
    for (let i = 0; i < CLIENTS; i++) {
      const client = await echoingClient(port, `client ${i}\n`);
      if (client === undefined) {
        refused++;
      } else {
        held.push(client);
      }
    }
    console.log(`${held.length} of ${CLIENTS} clients served under ulimit -n ${DESCRIPTOR_LIMIT}; ${refused} refused; tinylb has ${openDescriptors(tinylb.pid)} descriptors open`);
    expect(held.length).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
    // Each thread stops its own listener, and logs that once.
    expect(tinylb.countLines("file descriptor limit nearly reached")).toBeGreaterThanOrEqual(1);
    expect(tinylb.countLines("file descriptor limit nearly reached")).toBeLessThanOrEqual(workers);

    // At the limit, with a client retrying every 50 ms, tinylb must stay idle.
    const before = cpuTicks(tinylb.pid);
    const startedAt = performance.now();
    while (performance.now() - startedAt < 2000) {
      await echoingClient(port, "retry\n");
      await Bun.sleep(50);
    }
    const ticks = cpuTicks(tinylb.pid) - before;
    console.log(`CPU at the limit: ${ticks} clock ticks in 2 s (100 ticks per second is one core)`);
    expect(ticks).toBeLessThan(20);

    // Connections accepted before the limit keep working.
    for (const [index, client] of held.entries()) {
      expect(await echoes(client, `again ${index}\n`)).toBe(true);
    }

    // Freeing descriptors brings the listener back.
    for (const client of held.splice(0, Math.ceil(held.length / 2))) {
      client.end();
    }
    let resumed: Socket<{ received: string }> | undefined;
    await waitFor("a new client to be served", async () => {
      resumed = await echoingClient(port, "after\n");

      return resumed !== undefined;
    }, 15_000);
    held.push(resumed!);
    expect(tinylb.countLines("file descriptors are free again; accepting clients")).toBeGreaterThanOrEqual(1);
    expect(tinylb.running).toBe(true);
  } finally {
    for (const client of held) {
      client.terminate();
    }
    backend.stop();
  }
}, 60_000);
