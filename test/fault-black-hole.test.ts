import { expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { FaultProcess, tcpSocketStates } from "./support/fault-peers.ts";
import { NetworkNamespace } from "./support/network-namespace.ts";
import { waitFor } from "./support/wait.ts";

const namespace = new NetworkNamespace("b", 253);
const BACKEND_PORT = 7070;
const INTERVAL_MS = 1000;
const TIMEOUT_MS = 500;
/** The default `rise`: passes in a row that make the backend healthy again. */
const RISE = 2;
/**
 * Long enough for a connect started with the outage to retry its SYN several times, since
 * Linux first retries an unanswered SYN after 1 s. A probe loop that kept such a connect would
 * get through only at its next retry after the outage, whereas fresh connects get through at once.
 */
const OUTAGE_MS = 10_000;
/** `rise` intervals plus 1 s, and 2 s to spare. */
const RECOVERY_BOUND_MS = RISE * INTERVAL_MS + 1000 + 2000;

/** A backend inside the namespace that accepts and closes, run by the same Bun as the tests. */
const BACKEND_SCRIPT = `
Bun.listen({ hostname: process.argv[1], port: ${BACKEND_PORT}, socket: { open(socket) { socket.end(); }, data() {} } });
console.log("listening");
`;

const unavailable = namespace.checkAvailable("black-hole");

test.skipIf(unavailable !== undefined)("probed backend returns soon after a black hole ends", async () => {
  expect(namespace.create()).toBeUndefined();
  let backend: Subprocess | undefined;
  try {
    backend = await namespace.startBun(BACKEND_SCRIPT, [namespace.address], "listening");
    const probe = ["--probe", "tcp", "--probe-interval", `${INTERVAL_MS}ms`, "--probe-timeout", `${TIMEOUT_MS}ms`];
    await using tinylb = new FaultProcess(["--listen", "127.0.0.1:0", "--backend", `api=${namespace.address}:${BACKEND_PORT}`, ...probe, "--log-level", "info"]);
    await tinylb.port();

    expect(namespace.drop()).toBe("");
    const droppedAt = performance.now();
    await waitFor("the backend to turn unhealthy", () => tinylb.countLines("backend is unhealthy") > 0, 10_000);
    // Sample the probe's sockets in SYN_SENT until the outage ends: at most the one connect of
    // the running probe, and none in the 500 ms of each interval after the probe's timeout.
    const samples: number[] = [];
    while (performance.now() - droppedAt < OUTAGE_MS) {
      samples.push(tcpSocketStates(tinylb.pid).filter((state) => state === "SYN_SENT").length);
      await Bun.sleep(50);
    }
    const healthyLines = tinylb.countLines("backend is healthy");
    expect(namespace.lift()).toBe("");
    const liftedAt = performance.now();
    await waitFor("the backend to turn healthy", () => tinylb.countLines("backend is healthy") > healthyLines, 30_000);
    const recoveredMs = performance.now() - liftedAt;

    const idleShare = samples.filter((count) => count === 0).length / samples.length;
    console.log(
      `healthy ${(recoveredMs / 1000).toFixed(1)} s after a ${OUTAGE_MS / 1000} s outage ended; ` +
        `SYN_SENT sockets: at most ${Math.max(...samples)}, none in ${(idleShare * 100).toFixed(0)} % of ${samples.length} samples`,
    );
    expect(Math.max(...samples)).toBe(1);
    expect(idleShare).toBeGreaterThan(0.25);
    expect(recoveredMs).toBeLessThan(RECOVERY_BOUND_MS);
    expect(tinylb.running).toBe(true);
  } finally {
    backend?.kill();
    await backend?.exited;
    namespace.delete();
  }
}, 60_000);
