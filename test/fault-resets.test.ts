import { expect, test } from "bun:test";
import type { Socket } from "bun";
import { randomBytes } from "node:crypto";
import { DISCARD_MARKER, EchoBackend, type EchoPeer, FaultProcess, openDescriptors, type TransferResult, transfer } from "./support/fault-peers.ts";
import { waitFor } from "./support/wait.ts";

const TRANSFERS = 50;
const TRANSFER_BYTES = 512 * 1024;
/** Bound on the transfers of one run. */
const MAX_TRANSFERS = 2000;
/** Rounds of one client reset and one backend reset, while the transfers run. */
const RESET_ROUNDS = 3;

/** Connects a client that writes `marker`, then random bytes until `stop` is set, and records how it closed. */
async function streamingClient(port: number, marker: string) {
  const state = { closedAt: 0, ended: false, closeError: undefined as Error | undefined, stop: false };
  const chunk = randomBytes(16 * 1024);
  const pump = (socket: Socket<undefined>): void => {
    while (!state.stop && socket.write(chunk) === chunk.byteLength) {
      // Writes until the kernel buffer is full; the drain handler calls pump again.
    }
  };
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    allowHalfOpen: true,
    socket: {
      open: (opened) => {
        opened.write(marker);
        pump(opened);
      },
      drain: (drained) => pump(drained),
      data: () => {},
      end: () => {
        state.ended = true;
      },
      close: (_socket, error) => {
        state.closedAt = performance.now();
        state.closeError = error;
      },
    },
  });

  return { socket, state };
}

function errorCode(error: Error | undefined): string | undefined {
  return (error as { code?: string } | undefined)?.code;
}

function peerTagged(backend: EchoBackend, marker: string): EchoPeer | undefined {
  return backend.peers.find((peer) => peer.head.startsWith(marker.trimEnd()));
}

test("resets mid-transfer leave other transfers intact", async () => {
  const backend = new EchoBackend();
  await using tinylb = new FaultProcess(["--listen", "127.0.0.1:0", "--backend", `echo=${backend.target}`]);
  try {
    const port = await tinylb.port();
    const baseline = openDescriptors(tinylb.pid);

    // TRANSFERS loops, each running one transfer after another until the resets are over.
    let resetting = true;
    let running = 0;
    const results: TransferResult[] = [];
    const loop = async (): Promise<void> => {
      do {
        running++;
        results.push(await transfer(port, TRANSFER_BYTES));
        running--;
      } while (resetting && results.length < MAX_TRANSFERS);
    };
    const loops = Array.from({ length: TRANSFERS }, loop);
    const runningAtResets: number[] = [];

    for (let round = 0; round < RESET_ROUNDS; round++) {
      // A client that resets while its bytes are still flowing.
      const clientMarker = `${DISCARD_MARKER}RESET-CLIENT-${round}\n`;
      const resettingClient = await streamingClient(port, clientMarker);
      await waitFor("backend to read 64 KiB from the resetting client", () => (peerTagged(backend, clientMarker)?.bytes ?? 0) > 64 * 1024, 20_000);
      const clientResetAt = performance.now();
      runningAtResets.push(running);
      resettingClient.socket.terminate();

      // A backend that resets while its client is still streaming.
      const backendMarker = `${DISCARD_MARKER}RESET-BACKEND-${round}\n`;
      const victim = await streamingClient(port, backendMarker);
      await waitFor("backend to read 64 KiB from the victim client", () => (peerTagged(backend, backendMarker)?.bytes ?? 0) > 64 * 1024, 20_000);
      // Bun 1.4.4 reports a reset that arrives while the application is still writing as an
      // end of stream, so the victim stops writing before the reset to see it as one.
      victim.state.stop = true;
      const backendResetAt = performance.now();
      runningAtResets.push(running);
      peerTagged(backend, backendMarker)!.socket.terminate();

      const clientResetPeer = peerTagged(backend, clientMarker)!;
      await waitFor("backend peer of the resetting client to close", () => clientResetPeer.closedAt !== undefined, 5000);
      await waitFor("client of the resetting backend to close", () => victim.state.closedAt !== 0, 5000);
      const clientResetSeenMs = clientResetPeer.closedAt! - clientResetAt;
      const backendResetSeenMs = victim.state.closedAt - backendResetAt;
      console.log(`round ${round}: reset seen by the backend after ${clientResetSeenMs.toFixed(1)} ms, by the client after ${backendResetSeenMs.toFixed(1)} ms`);
      expect(clientResetPeer.ended).toBe(false);
      expect(errorCode(clientResetPeer.closeError)).toBe("ECONNRESET");
      // The victim may still have bytes in its send buffer, so Bun reports the reset as EPIPE
      // (and an end event) instead; a FIN alone never produces either error.
      expect(["ECONNRESET", "EPIPE"]).toContain(errorCode(victim.state.closeError)!);
      expect(clientResetSeenMs).toBeLessThan(1000);
      expect(backendResetSeenMs).toBeLessThan(1000);
    }

    resetting = false;
    await Promise.all(loops);
    console.log(`transfers running at each reset: ${runningAtResets.join(", ")}; ${results.length} transfers in all`);
    expect(Math.min(...runningAtResets)).toBe(TRANSFERS);
    const intact = results.filter((result) => result.ended && result.receivedHash === result.sentHash).length;
    expect(intact).toBe(results.length);
    expect(tinylb.running).toBe(true);

    // Every client socket closed, so tinylb must close each backend socket and return to the
    // descriptors it held once started (listener, listen lock, event loop). The deadlines allow
    // for a full test run on two shared cores, where closing 2 x 50 sockets can lag.
    await waitFor("backend sockets to close", () => backend.openCount === 0, 30_000);
    await waitFor(`descriptors back to the baseline of ${baseline}`, () => openDescriptors(tinylb.pid) === baseline, 30_000);
    expect(openDescriptors(tinylb.pid)).toBe(baseline);
  } finally {
    backend.stop();
  }
}, 120_000);
