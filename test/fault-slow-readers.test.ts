import { expect, test } from "bun:test";
import type { Socket } from "bun";
import { FaultProcess, residentBytes } from "./support/fault-peers.ts";
import { waitFor } from "./support/wait.ts";

const CONNECTIONS = 50;
/** Bytes each side tries to write: far more than tinylb and the kernel buffers can hold. */
const BYTES_PER_SIDE = 16 * 1024 * 1024;
/**
 * Queued bytes per connection that `src/flow.ts` documents: one read per direction, and Bun
 * 1.4.4 reads at most 512 KiB from a TCP socket at a time.
 */
const QUEUE_CAP_PER_CONNECTION = 1024 * 1024;
/**
 * Resident memory allowed per stalled connection: the queue cap once more for socket state,
 * read buffers the garbage collector has not reclaimed yet, and allocator slack. RSS is the
 * only measure a test has of the compiled binary; 0.9 to 1.2 MiB was measured on Linux x64.
 */
const RSS_CAP_PER_CONNECTION = 2 * QUEUE_CAP_PER_CONNECTION;

/** Writes `BYTES_PER_SIDE` bytes as fast as the socket takes them and never reads. */
class Firehose {
  written = 0;
  readonly #chunk = new Uint8Array(256 * 1024).fill(0x61);

  pump(socket: Socket<unknown>): void {
    while (this.written < BYTES_PER_SIDE) {
      const written = socket.write(this.#chunk);
      if (written <= 0) {
        return;
      }
      this.written += written;
    }
  }
}

test("slow readers keep memory per connection under the cap", async () => {
  const backendHoses: Firehose[] = [];
  const backend = Bun.listen<Firehose>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open: (socket) => {
        socket.data = new Firehose();
        backendHoses.push(socket.data);
        socket.pause();
        socket.data.pump(socket);
      },
      drain: (socket) => socket.data.pump(socket),
      data: () => {},
      error() {},
    },
  });
  await using tinylb = new FaultProcess(["--listen", "127.0.0.1:0", "--backend", `firehose=127.0.0.1:${backend.port}`]);
  const clients: Socket<Firehose>[] = [];
  try {
    const port = await tinylb.port();
    // One connection first, so the baseline includes the code paths a connection touches.
    const warmUp = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
    warmUp.write("warm up\n");
    warmUp.end();
    await waitFor("warm-up connection to reach the backend", () => backendHoses.length === 1);
    Bun.gc(true);
    const baseline = residentBytes(tinylb.pid);

    const clientHoses: Firehose[] = [];
    for (let i = 0; i < CONNECTIONS; i++) {
      const hose = new Firehose();
      clientHoses.push(hose);
      clients.push(
        await Bun.connect({
          hostname: "127.0.0.1",
          port,
          data: hose,
          socket: {
            open: (socket) => {
              socket.pause();
              socket.data.pump(socket);
            },
            drain: (socket) => socket.data.pump(socket),
            data: () => {},
            error() {},
          },
        }),
      );
    }
    await waitFor("every backend connection", () => backendHoses.length === CONNECTIONS + 1);

    // Both directions are stuck once no side has written anything for half a second.
    const total = (): number => [...backendHoses, ...clientHoses].reduce((sum, hose) => sum + hose.written, 0);
    let last = -1;
    await waitFor("writes to stall", async () => {
      const now = total();
      const stalled = now === last;
      last = now;
      await Bun.sleep(500);

      return stalled;
    }, 30_000);

    const resident = residentBytes(tinylb.pid);
    const perConnection = (resident - baseline) / CONNECTIONS;
    console.log(
      `${CONNECTIONS} stalled connections: RSS ${(baseline / 2 ** 20).toFixed(1)} MiB -> ${(resident / 2 ** 20).toFixed(1)} MiB, ` +
        `${(perConnection / 1024).toFixed(0)} KiB per connection; peers wrote ${(total() / 2 ** 20).toFixed(0)} MiB in all`,
    );
    expect(total()).toBeLessThan(2 * CONNECTIONS * BYTES_PER_SIDE);
    expect(perConnection).toBeLessThan(RSS_CAP_PER_CONNECTION);
    expect(tinylb.running).toBe(true);
  } finally {
    for (const client of clients) {
      client.terminate();
    }
    backend.stop(true);
  }
}, 60_000);
