/**
 * Draining of stdout and stderr before the process exits.
 *
 * Bun writes to a pipe asynchronously: `process.stdout.write()` returns before the reader has
 * taken the bytes, and `process.exit()` drops whatever the pipe has not taken yet (everything
 * past the 64 KiB a Linux pipe buffers). Ending both streams first waits for the queued bytes.
 */
import { writeSync } from "node:fs";

/** The outcome of ending one stream: `undefined` when every byte was written, else the error. */
type EndResult = NodeJS.ErrnoException | undefined;

function endStream(stream: NodeJS.WriteStream): Promise<EndResult> {
  return new Promise((resolve) => {
    stream.on("error", (error) => resolve(error));
    stream.end(() => resolve(undefined));
  });
}

/** Milliseconds a stopping balancer waits at exit for a stalled reader of stdout or stderr. */
export const DRAIN_TIMEOUT_MS = 5000;

/**
 * Ends stdout and stderr and waits until each has written everything queued, or failed.
 * Returns the exit code to use: `exitCode`, or 1 when it was 0 but stdout could not be
 * written, so a shortened output never reads as success. A closed pipe (EPIPE, as from
 * `tinylb status | head -1`) is not reported on stderr, since the reader left on purpose.
 * Nothing may be written to either stream afterwards.
 *
 * Without `timeoutMs` the wait lasts as long as the reader takes, as for any command whose
 * output is piped (`tinylb status | less`). A stopping balancer passes `timeoutMs`, so that
 * a stalled log reader cannot keep it alive: past the timeout it exits with `exitCode`, and
 * the log lines the reader had not taken are lost.
 */
export async function drainProcessOutput(exitCode: number, timeoutMs?: number): Promise<number> {
  let timer: Timer | undefined;
  const waits: Promise<EndResult[] | "stalled">[] = [Promise.all([endStream(process.stdout), endStream(process.stderr)])];
  if (timeoutMs !== undefined) {
    waits.push(
      new Promise((resolve) => {
        timer = setTimeout(() => resolve("stalled"), timeoutMs);
      }),
    );
  }
  // An error on stderr changes nothing: there is nowhere left to report it.
  const ended = await Promise.race(waits);
  clearTimeout(timer);
  if (ended === "stalled") {
    // Nothing is written about it: a write to the stalled stream would block.
    return exitCode;
  }
  const [stdout] = ended;
  if (stdout === undefined || exitCode !== 0) {
    return exitCode;
  }
  if (stdout.code !== "EPIPE") {
    // stderr is ended, so the error goes to the descriptor directly.
    try {
      writeSync(2, `tinylb: write to stdout failed: ${stdout.message}\n`);
    } catch {
      // stderr is gone as well; the exit code still reports the failure.
    }
  }

  return 1;
}
