import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { EchoBackend, FaultProcess, openDescriptors } from "./support/fault-peers.ts";
import { waitFor } from "./support/wait.ts";

function holdsLock(pid: number, port: number): boolean {
  return readFileSync(`/proc/${pid}/net/unix`, "utf8").includes(`@tinylb-listen:127.0.0.1:${port}`);
}

// tinylb logs "listening" before it takes the listen lock of a port the kernel picked and
// before its relay workers start. A descriptor baseline taken at that line can therefore
// miss descriptors that stay open for the life of the process.
test("FaultProcess port waits until tinylb has started", async () => {
  const backend = new EchoBackend();
  try {
    await using tinylb = new FaultProcess(["--listen", "127.0.0.1:0", "--backend", `echo=${backend.target}`, "--workers", "2"]);
    const port = await tinylb.port();
    const atPort = openDescriptors(tinylb.pid);

    expect(tinylb.stderr).toContain("tinylb started");
    expect(holdsLock(tinylb.pid, port)).toBe(true);
    await waitFor("the second relay worker to listen", () => tinylb.countLines("listening") === 2, 10_000);
    expect(openDescriptors(tinylb.pid)).toBe(atPort);
  } finally {
    backend.stop();
  }
}, 30_000);
