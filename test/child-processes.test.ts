import { expect, test } from "bun:test";
import { join } from "node:path";
import { waitFor } from "./support/wait.ts";

const HELPER = join(import.meta.dir, "support", "child-processes.ts");

/** Starts a Bun program that tracks a `sleep` child, prints its pid, then ends as `ending` says. */
async function orphanCandidate(ending: string): Promise<number> {
  const program = `
    import { trackChild } from ${JSON.stringify(HELPER)};
    const child = trackChild(Bun.spawn(["sleep", "60"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" }));
    console.log(child.pid);
    ${ending}
  `;
  const parent = Bun.spawn([process.execPath, "-e", program], { stdin: "ignore", stdout: "pipe", stderr: "inherit" });
  const output = await new Response(parent.stdout).text();
  await parent.exited;

  return Number(output.trim());
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);

    return true;
  } catch {
    return false;
  }
}

test.each([
  ["exit", "process.exit(0);"],
  ["SIGTERM", "setTimeout(() => {}, 60_000); process.kill(process.pid, 'SIGTERM');"],
])("trackChild kills the child on %s", async (_, ending) => {
  const pid = await orphanCandidate(ending);

  expect(pid).toBeGreaterThan(0);
  await waitFor(`child ${pid} to be gone`, () => !isRunning(pid), 10_000);
});
