import { expect, test } from "bun:test";
import { TinylbProcess } from "./support/tinylb-process.ts";
import { within } from "./support/wait.ts";

test.each(["SIGUSR1", "SIGUSR2"] as const)("binary ignores %s and keeps serving", async (signal) => {
  await using tinylb = TinylbProcess.start(["--listen", "127.0.0.1:0", "--backend", "a=127.0.0.1:9"]);
  await tinylb.waitForLog("tinylb started");

  tinylb.signal(signal);
  await tinylb.waitForLog(`${signal} received and ignored`);

  expect(tinylb.process.exitCode).toBeNull();
  expect(await within("tinylb to stop on SIGTERM", tinylb.stop(), 15_000)).toBe(0);
  expect(tinylb.stderr).toContain("SIGTERM received; draining");
});
