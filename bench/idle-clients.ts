/**
 * Holds idle client connections open for the idle-memory workload, in a process of its own
 * so their descriptors do not count against the benchmark's limit.
 *
 * Usage: bun bench/idle-clients.ts PORT COUNT
 * Opens COUNT connections to 127.0.0.1:PORT, sends nothing, prints "ready COUNT" once every
 * connect succeeded (or "failed MESSAGE"), and exits when its stdin closes.
 */
import type { Socket } from "bun";

const BATCH = 200;

const port = Number(process.argv[2]);
const count = Number(process.argv[3]);
const sockets: Socket<undefined>[] = [];

try {
  for (let opened = 0; opened < count; opened += BATCH) {
    const batch = Array.from({ length: Math.min(BATCH, count - opened) }, () =>
      Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }),
    );
    sockets.push(...(await Promise.all(batch)));
  }
  process.stdout.write(`ready ${sockets.length}\n`);
} catch (error) {
  process.stdout.write(`failed after ${sockets.length} connections: ${(error as Error).message}\n`);
}

for await (const _ of Bun.stdin.stream()) {
  // Wait for the benchmark to close stdin.
}
for (const socket of sockets) {
  socket.terminate();
}
process.exit(0);
