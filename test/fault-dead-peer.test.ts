import { expect, test } from "bun:test";
import type { Socket } from "bun";
import { FaultProcess } from "./support/fault-peers.ts";
import { waitFor } from "./support/wait.ts";

const NAMESPACE = `tinylb-fault-${process.pid}`;
const HOST_LINK = `tlbh${process.pid % 100_000}`;
const NAMESPACE_LINK = `tlbn${process.pid % 100_000}`;
const SUBNET = `10.254.${process.pid % 250}`;
const BACKEND_ADDRESS = `${SUBNET}.2`;
const KEEPALIVE_SECONDS = 1;
/**
 * Bun 1.4.4's setKeepAlive sends 10 probes 1 s apart after the idle time: a dead peer was
 * noticed 11.2 s after the last packet with `--keepalive 1s`. A dead peer is therefore
 * noticed about the keepalive time plus 10 s after the connection went idle.
 */
const NOTICE_BOUND_MS = KEEPALIVE_SECONDS * 1000 + 10_000 + 4000;

function run(command: string[]): { ok: boolean; output: string } {
  const result = Bun.spawnSync(command, { stdout: "pipe", stderr: "pipe" });

  return { ok: result.success, output: `${result.stdout.toString()}${result.stderr.toString()}`.trim() };
}

/** Creates the namespace and its veth link; returns why it cannot, or undefined on success. */
function createNamespace(): string | undefined {
  if (!run(["iptables", "--version"]).ok) {
    return "iptables is not installed";
  }
  const steps = [
    ["ip", "netns", "add", NAMESPACE],
    ["ip", "link", "add", HOST_LINK, "type", "veth", "peer", "name", NAMESPACE_LINK],
    ["ip", "link", "set", NAMESPACE_LINK, "netns", NAMESPACE],
    ["ip", "addr", "add", `${SUBNET}.1/30`, "dev", HOST_LINK],
    ["ip", "link", "set", HOST_LINK, "up"],
    ["ip", "netns", "exec", NAMESPACE, "ip", "addr", "add", `${BACKEND_ADDRESS}/30`, "dev", NAMESPACE_LINK],
    ["ip", "netns", "exec", NAMESPACE, "ip", "link", "set", NAMESPACE_LINK, "up"],
  ];
  for (const step of steps) {
    const result = run(step);
    if (!result.ok) {
      deleteNamespace();

      return `"${step.join(" ")}" failed: ${result.output}`;
    }
  }

  return undefined;
}

function deleteNamespace(): void {
  run(["ip", "netns", "del", NAMESPACE]);
  // Deleting the namespace removes both ends of the veth pair; this covers a failed setup.
  run(["ip", "link", "del", HOST_LINK]);
}

/** A greeting backend inside the namespace, run by the same Bun as the tests. */
const BACKEND_SCRIPT = `
Bun.listen({ hostname: process.argv[1], port: 7070, socket: { open(socket) { socket.write("hello\\n"); }, data() {} } });
console.log("listening");
`;

const unavailable = createNamespace();
if (unavailable !== undefined) {
  console.log(`skipping the dead-peer test: this machine cannot create a network namespace (${unavailable})`);
} else {
  deleteNamespace();
}

test.skipIf(unavailable !== undefined)("keepalive closes the client of a dead backend", async () => {
  const setupError = createNamespace();
  expect(setupError).toBeUndefined();
  const backend = Bun.spawn(["ip", "netns", "exec", NAMESPACE, process.execPath, "-e", BACKEND_SCRIPT, BACKEND_ADDRESS], { stdout: "pipe", stderr: "inherit" });
  try {
    const reader = backend.stdout.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain("listening");
    reader.releaseLock();

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
    for (const chain of ["INPUT", "OUTPUT"]) {
      const drop = run(["ip", "netns", "exec", NAMESPACE, "iptables", "-A", chain, "-j", "DROP"]);
      expect(drop.output).toBe("");
    }
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
    backend.kill();
    await backend.exited;
    deleteNamespace();
  }
}, 60_000);
