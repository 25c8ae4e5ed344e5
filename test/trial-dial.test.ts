import { expect, test } from "bun:test";
import { EchoBackend, FaultProcess, HangingTarget } from "./support/fault-peers.ts";
import { waitFor } from "./support/wait.ts";

const CONNECT_TIMEOUT_MS = 1000;
/** Clients sent after the first back-off ended, one every LOAD_GAP_MS. */
const LOAD_CLIENTS = 60;
const LOAD_GAP_MS = 50;

/** Connects, sends one line, and resolves once the echo comes back or the connection ends. */
async function echoOnce(port: number): Promise<boolean> {
  const { promise, resolve } = Promise.withResolvers<boolean>();
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(client, chunk) {
        resolve(chunk.toString() === "ping\n");
        client.end();
      },
      close: () => resolve(false),
      error: () => resolve(false),
    },
  });
  socket.write("ping\n");
  const timer = setTimeout(() => resolve(false), 10_000);
  const echoed = await promise;
  clearTimeout(timer);

  return echoed;
}

function deadDials(tinylb: FaultProcess): number {
  return tinylb.stderr.split("\n").filter((line) => line.includes("dial failed") && line.includes("backend=dead")).length;
}

/**
 * A black-holed target used to get every client the rotation sent it once its back-off was over.
 * In relay workers it also got them during the back-off when a probe kept it unhealthy. Each
 * such client waited a connect timeout and left a socket in SYN_SENT. Now one client per thread
 * tries it after each back-off, and the others pass it over meanwhile.
 */
test.each([
  [1, false],
  [2, false],
  [2, true],
])("one trial dial after each back-off, %d thread(s), degraded: %p", async (workers, degraded) => {
  const live = new EchoBackend();
  const dead = await HangingTarget.start();
  const args = ["--listen", "127.0.0.1:0", "--backend", `dead=${dead.target}`, "--backend", `live=${live.target}`];
  // An http probe fails on both, because the echo backend sends the request back, which is no
  // HTTP response. Every backend is then unhealthy, and the rotation tries them all (degraded).
  const probe = degraded ? ["--probe", "http", "--probe-interval", "500ms", "--probe-timeout", "400ms"] : [];
  await using tinylb = new FaultProcess([...args, ...probe, "--connect-timeout", `${CONNECT_TIMEOUT_MS}ms`, "--workers", String(workers), "--log-level", "debug"]);
  try {
    const port = await tinylb.port();
    if (degraded) {
      await waitFor("degraded", () => tinylb.stderr.includes("degraded: trying all of them"));
    }
    // One client per thread meets the dead target first, waits the connect timeout, and is served by live.
    await waitFor("a first failed dial", async () => {
      expect(await echoOnce(port)).toBe(true);

      return deadDials(tinylb) > 0;
    });
    const before = deadDials(tinylb);
    await Bun.sleep(1500);

    const served: Promise<boolean>[] = [];
    for (let i = 0; i < LOAD_CLIENTS; i++) {
      served.push(echoOnce(port));
      await Bun.sleep(LOAD_GAP_MS);
    }

    expect((await Promise.all(served)).every(Boolean)).toBe(true);
    // In 3 s with back-offs of 2 s and more: one trial per back-off end, at most two per thread.
    // Before, about half of the clients of each second after a back-off dialled the dead target.
    expect(deadDials(tinylb) - before).toBeLessThanOrEqual(2 * workers);
  } finally {
    live.stop();
    await dead.stop();
  }
}, 60_000);

/**
 * With every backend black-holed, each client used to dial each backend in turn, waiting a
 * connect timeout per backend and leaving a socket in SYN_SENT for each. Backends that are
 * cooling down after a failed dial are now not tried, so such a client is closed at once.
 */
test("clients are closed at once while every backend cools down", async () => {
  const dead = [await HangingTarget.start(), await HangingTarget.start()];
  const args = ["--listen", "127.0.0.1:0", "--backend", `dead=${dead[0]!.target}`, "--backend", `dead2=${dead[1]!.target}`];
  await using tinylb = new FaultProcess([...args, "--connect-timeout", `${CONNECT_TIMEOUT_MS}ms`, "--log-level", "debug"]);
  try {
    const port = await tinylb.port();
    // The first client tries both and is closed after two connect timeouts.
    expect(await echoOnce(port)).toBe(false);
    const failedBefore = tinylb.countLines("dial failed");

    const timed = async (): Promise<{ echoed: boolean; ms: number }> => {
      const started = performance.now();
      const echoed = await echoOnce(port);

      return { echoed, ms: performance.now() - started };
    };
    const burst = await Promise.all(Array.from({ length: 10 }, timed));

    expect(burst.every((client) => !client.echoed)).toBe(true);
    // A back-off that ends during the burst gives one client a trial dial of that backend.
    // Every other client is closed well under one connect timeout.
    expect(burst.filter((client) => client.ms < CONNECT_TIMEOUT_MS / 2).length).toBeGreaterThanOrEqual(8);
    expect(tinylb.countLines("dial failed") - failedBefore).toBeLessThanOrEqual(2);
    // One warning per 10 s; the other clients' lines are debug lines.
    const closedLines = tinylb.stderr.split("\n").filter((line) => line.includes("every backend failed a dial moments ago and is cooling down; closing client"));
    expect(closedLines.filter((line) => line.includes("WARN")).length).toBe(1);
    expect(closedLines.length).toBeGreaterThanOrEqual(8);
  } finally {
    await Promise.all(dead.map((target) => target.stop()));
  }
}, 60_000);
