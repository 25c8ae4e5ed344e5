/**
 * A peer that resets while tinylb is writing to it: the write takes the socket's error, and
 * Bun 1.4.4 then reports the reset as an end of stream, or not at all. tinylb must still pass
 * it on as a reset, not as a FIN, and a Unix socket peer that closes after its reply must
 * not turn into a reset either. The peers are Python programs (test/support/reset-peers.py),
 * because a Bun peer has the same trait and could not tell a reset from an end.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { tempDirectory } from "./support/temp-directory.ts";
import { trackChild } from "./support/child-processes.ts";
import { FaultProcess } from "./support/fault-peers.ts";
import { waitFor } from "./support/wait.ts";

const PEERS = join(import.meta.dir, "support", "reset-peers.py");
/** Connections per case; without the failed-write check, 4 to 10 in 10 passed the reset on as a FIN. */
const CONNECTIONS = 20;

/** Starts a peer program; returns the lines it printed so far and a promise of its end. */
function startPeer(args: string[]): { lines: string[]; ended: Promise<void> } {
  const child = trackChild(Bun.spawn(["python3", PEERS, ...args], { stdin: "ignore", stdout: "pipe", stderr: "inherit" }));
  const lines: string[] = [];
  const ended = (async () => {
    const decoder = new TextDecoder();
    let partial = "";
    for await (const chunk of child.stdout) {
      const parts = (partial + decoder.decode(chunk, { stream: true })).split("\n");
      partial = parts.pop()!;
      lines.push(...parts);
    }
  })();

  return { lines, ended };
}

/** Starts a backend peer in `mode` and tinylb in front of it; returns tinylb's port. */
async function startBalancer(mode: string, tinylbArgs: string[]) {
  const backend = startPeer([mode, String(CONNECTIONS), "30"]);
  await waitFor("the backend peer's port", () => backend.lines.length > 0);
  const tinylb = new FaultProcess(["--listen", "127.0.0.1:0", "--backend", `echo=127.0.0.1:${backend.lines[0]}`, ...tinylbArgs]);

  return { backend, tinylb, port: await tinylb.port() };
}

test("client reset while writing resets the backend", async () => {
  const { backend, tinylb, port } = await startBalancer("backend-record", ["--workers", "2"]);
  await using _tinylb = tinylb;

  await startPeer(["client-reset", String(port), String(CONNECTIONS)]).ended;
  await backend.ended;
  const outcomes = backend.lines.slice(1);

  expect(outcomes.length).toBe(CONNECTIONS);
  expect(outcomes.filter((outcome) => outcome === "FIN")).toEqual([]);
}, 60_000);

test("backend reset while writing resets the client", async () => {
  const { tinylb, port } = await startBalancer("backend-reset", []);
  await using _tinylb = tinylb;

  const clients = startPeer(["client-record", String(port), String(CONNECTIONS)]);
  await clients.ended;

  expect(clients.lines.length).toBe(CONNECTIONS);
  expect(clients.lines.filter((outcome) => outcome === "FIN")).toEqual([]);
}, 60_000);

test("client reset while the backend reads nothing resets the backend", async () => {
  const { backend, tinylb, port } = await startBalancer("backend-noread", []);
  await using _tinylb = tinylb;

  await startPeer(["client-reset", String(port), String(CONNECTIONS)]).ended;
  await backend.ended;
  const outcomes = backend.lines.slice(1);

  expect(outcomes.length).toBe(CONNECTIONS);
  expect(outcomes.filter((outcome) => outcome !== "RST")).toEqual([]);
}, 60_000);

test("Unix backend closing after its reply ends the client cleanly", async () => {
  const replyBytes = 4_000_000;
  const path = join(tempDirectory("tinylb-unix-reply-"), "backend.sock");
  const backend = startPeer(["unix-reply", path, String(replyBytes), "30"]);
  await waitFor("the backend peer to listen", () => backend.lines.length > 0);
  await using tinylb = new FaultProcess(["--listen", "127.0.0.1:0", "--backend", `unix=unix:${path}`]);
  const port = await tinylb.port();

  const clients = startPeer(["slow-read", String(port), "3"]);
  await clients.ended;

  expect(clients.lines).toEqual([`EOF ${replyBytes}`, `EOF ${replyBytes}`, `EOF ${replyBytes}`]);
}, 60_000);
