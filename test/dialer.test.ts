import { expect, test } from "bun:test";
import { createBackend } from "../src/backend.ts";
import { ConnectDeadlines } from "../src/connect-deadlines.ts";
import type { Connection } from "../src/connection.ts";
import { DescriptorShortage } from "../src/descriptor-shortage.ts";
import { DialAttempt, type DialError } from "../src/dialer.ts";
import type { BackendSelector } from "../src/backend-selector.ts";
import { LogLines } from "./support/log-lines.ts";

/** Fails a dial of backend "b1" with ECONNREFUSED while `open` of 100 descriptors are open, and returns the DialError it settled with. */
function refusedDialAt(open: number): DialError | undefined {
  const shortage = new DescriptorShortage(new LogLines().logger, 100, () => open);
  const options = { connectTimeoutMs: 1000, deadlines: new ConnectDeadlines<DialAttempt>(), isCurrent: () => true, attached: () => {}, descriptorShortage: shortage };
  let settled: DialError | undefined;
  const attempt = new DialAttempt({} as Connection, createBackend("b1", "127.0.0.1:1"), {} as BackendSelector, null, options, { dialSettled: (_attempt, error) => (settled = error) });

  attempt.connectFailed(Object.assign(new Error("Failed to connect"), { code: "ECONNREFUSED" }));

  return settled;
}

test("DialAttempt counts a refused connect against the backend", () => {
  const error = refusedDialAt(20);

  expect(error?.detail).toBe("connection refused (ECONNREFUSED)");
  expect(error?.givenUp).toBe(false);
});

test("DialAttempt at the descriptor limit blames no backend", () => {
  const error = refusedDialAt(100);

  expect(error?.detail).toBe("too many open files (EMFILE)");
  expect(error?.message).toBe('dial backend "b1" (127.0.0.1:1) failed: too many open files (EMFILE)');
  expect(error?.givenUp).toBe(true);
});
