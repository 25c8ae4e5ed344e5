import { expect, test } from "bun:test";

test("relay worker survives an uncaught error", async () => {
  const child = Bun.spawn([process.execPath, new URL("./support/broken-worker-command.ts", import.meta.url).pathname], {
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()]);
  await child.exited;

  // Before the fix the thread ended, closing its listener and every connection it relayed.
  expect(stdout.trim().split("\n")).toEqual(["synced", "synced"]);
  expect(stderr).toContain("invariant violated: uncaught exception");
});
