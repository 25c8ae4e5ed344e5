import { expect, test } from "bun:test";
import type { Socket, Subprocess } from "bun";
import { FaultProcess } from "./support/fault-peers.ts";
import { NetworkNamespace } from "./support/network-namespace.ts";
import { waitFor } from "./support/wait.ts";

const namespace = new NetworkNamespace("f");
const BACKEND_ADDRESS = namespace.address;
const KEEPALIVE_SECONDS = 1;
/**
 * Bun 1.4.4's setKeepAlive sends 10 probes 1 s apart after the idle time: a dead peer was
 * noticed 11.2 s after the last packet with `--keepalive 1s`. A dead peer is therefore
 * noticed about the keepalive time plus 10 s after the connection went idle.
 */
const NOTICE_BOUND_MS = KEEPALIVE_SECONDS * 1000 + 10_000 + 4000;

/** A greeting backend inside the namespace, run by the same Bun as the tests. */
const BACKEND_SCRIPT = `
Bun.listen({ hostname: process.argv[1], port: 7070, socket: { open(socket) { socket.write("hello\\n"); }, data() {} } });
console.log("listening");
`;

const unavailable = namespace.checkAvailable("dead-peer");

test.skipIf(unavailable !== undefined)("keepalive closes the client of a dead backend", async () => {
  const setupError = namespace.create();
  expect(setupError).toBeUndefined();
  let backend: Subprocess | undefined;
  try {
    backend = await namespace.startBun(BACKEND_SCRIPT, [BACKEND_ADDRESS], "listening");
    await using tinylb = new FaultProcess(["--listen", "127.0.0.1:0", "--backend", `dead=${BACKEND_ADDRESS}:7070`, "--keepalive", `${KEEPALIVE_SECONDS}s`]);
    const port = await tinylb.port();
    const client = { received: "", ended: false, closedAt: 0, closeError: undefined as Error | undefined };
    const socket: Socket<undefined> = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      allowHalfOpen: true,
      socket: {
        data: (_socket, chunk) => {
          client.received += chunk.toString("latin1");
        },
        end: () => {
          client.ended = true;
        },
        close: (_socket, error) => {
          client.closedAt = performance.now();
          client.closeError = error;
        },
        error() {},
      },
    });
    await waitFor("greeting from the namespace backend", () => client.received === "hello\n");

    // The backend host goes silent: every packet in and out of the namespace is dropped.
    expect(namespace.drop()).toBe("");
    const silentAt = performance.now();

    await waitFor("client to be closed", () => client.closedAt !== 0, NOTICE_BOUND_MS);
    const noticedMs = client.closedAt - silentAt;
    console.log(`dead backend noticed ${(noticedMs / 1000).toFixed(1)} s after it went silent, with --keepalive ${KEEPALIVE_SECONDS}s`);
    expect(client.ended).toBe(false);
    expect((client.closeError as { code?: string } | undefined)?.code).toBe("ECONNRESET");
    expect(noticedMs).toBeLessThan(NOTICE_BOUND_MS);
    expect(tinylb.running).toBe(true);
    socket.terminate();
  } finally {
    backend?.kill();
    await backend?.exited;
    namespace.delete();
  }
}, 60_000);
