import type { Subprocess } from "bun";

/**
 * Child processes of the test helpers that may still run, so none outlives the test process.
 *
 * A test that times out skips its own cleanup. Without this registry its dist/tinylb or peer
 * child kept running with parent pid 1 after `bun test` ended.
 */
const running = new Map<number, Subprocess>();

/**
 * Registers `child` to be killed (SIGKILL, by its pid) when the test process exits or is
 * stopped by SIGINT, SIGTERM or SIGHUP. A child leaves the registry once it has exited, so
 * a reused pid is never signalled.
 */
export function trackChild<T extends Subprocess>(child: T): T {
  running.set(child.pid, child);
  void child.exited.then(() => running.delete(child.pid));

  return child;
}

function killRunningChildren(): void {
  for (const [pid, child] of running) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // It exited between the check and the kill.
      }
    }
  }
  running.clear();
}

process.on("exit", killRunningChildren);
for (const [signal, number] of [["SIGINT", 2], ["SIGTERM", 15], ["SIGHUP", 1]] as const) {
  process.once(signal, () => {
    killRunningChildren();
    process.exit(128 + number);
  });
}
