import { afterEach, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DRAIN_TIMEOUT_MS } from "../src/process-output.ts";
import { trackChild } from "./support/child-processes.ts";
import { BINARY, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor, within } from "./support/wait.ts";

// A Linux pipe buffers 64 KiB, so output past that is lost when tinylb exits before the
// reader catches up. The reader here starts reading a second after tinylb starts writing:
// that delay is the slow reader under test, not a wait for a condition.
const SLOW_READER = "(sleep 1; cat)";

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "tinylb-exit-output-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));

  return dir;
}

/** Writes a config with `count` backends on loopback ports nothing listens on; none is dialled. */
function writeConfig(dir: string, count: number, admin: string): string {
  const lines = ["listen: 127.0.0.1:0", `admin: unix:${admin}`, "backends:"];
  for (let index = 0; index < count; index++) {
    lines.push(`  - { id: backend-with-a-long-name-${index}, target: 127.0.0.1:${20000 + index} }`);
  }
  const path = join(dir, "lb.yaml");
  writeFileSync(path, lines.join("\n") + "\n");

  return path;
}

/** Runs `script` in bash with pipefail, so the exit status is tinylb's when the reader succeeds. */
async function runPipeline(script: string, args: string[]): Promise<{ code: number; stdout: string }> {
  const child = trackChild(Bun.spawn(["bash", "-c", `set -o pipefail; ${script}`, ...args], { stdout: "pipe", stderr: "inherit" }));
  const stdout = await within("pipeline output", new Response(child.stdout).text(), 30_000);

  return { code: await within("pipeline exit", child.exited, 30_000), stdout };
}

test("status prints all of a large JSON output to a slow pipe", async () => {
  const dir = tempDir();
  const admin = join(dir, "admin.sock");
  const balancer = TinylbProcess.start(["--config", writeConfig(dir, 600, admin), "--admin", `unix:${admin}`]);
  cleanup.push(() => balancer[Symbol.asyncDispose]());
  await balancer.waitForLog("tinylb started");

  const { code, stdout } = await runPipeline(`"$0" status --json --admin "unix:$1" | ${SLOW_READER}`, [BINARY, admin]);

  expect(stdout.length).toBeGreaterThan(128 * 1024);
  expect(code).toBe(0);
  const status = JSON.parse(stdout) as { backends: unknown[] };
  expect(status.backends.length).toBe(600);
});

test("balancer logs reach a slow pipe before exit", async () => {
  const dir = tempDir();
  const admin = join(dir, "admin.sock");
  const logFile = join(dir, "log.txt");
  const config = writeConfig(dir, 2000, admin);
  const child = trackChild(Bun.spawn(["bash", "-c", `exec "$0" --config "$1" 2> >(${SLOW_READER} > "$2")`, BINARY, config, logFile], { stdout: "ignore", stderr: "inherit" }));
  cleanup.push(() => child.kill("SIGKILL"));
  // The admin API responds only after the signal handlers are in place.
  await waitFor("admin API", async () => existsSync(admin) && (await fetch("http://localhost/healthz", { unix: admin }).then(() => true, () => false)), 20_000);

  // Each change logs a "backend set changed" line of about 3 KB, listing the ids and targets.
  for (let index = 0; index < 40; index++) {
    const response = await fetch(`http://localhost/v1/backends/added-${index}`, { method: "PUT", unix: admin, body: JSON.stringify({ target: `127.0.0.1:${30000 + index}` }) });
    expect(response.status).toBeLessThan(300);
  }

  child.kill("SIGTERM");
  expect(await within("tinylb exit", child.exited, 30_000)).toBe(0);
  await waitFor("the last log line", () => existsSync(logFile) && readFileSync(logFile, "utf8").includes("tinylb stopped"), 20_000);

  const log = readFileSync(logFile, "utf8");
  expect(log.length).toBeGreaterThan(80 * 1024);
  expect(log).toContain("draining");
  expect(log.endsWith("\n")).toBe(true);
});

test("status waits for a reader slower than the balancer's drain timeout", async () => {
  const dir = tempDir();
  const admin = join(dir, "admin.sock");
  const balancer = TinylbProcess.start(["--config", writeConfig(dir, 600, admin), "--admin", `unix:${admin}`]);
  cleanup.push(() => balancer[Symbol.asyncDispose]());
  await balancer.waitForLog("tinylb started");

  // One second more than DRAIN_TIMEOUT_MS: a one-shot command waits for its reader.
  const { code, stdout } = await runPipeline(`"$0" status --json --admin "unix:$1" | (sleep ${DRAIN_TIMEOUT_MS / 1000 + 1}; cat)`, [BINARY, admin]);

  expect(code).toBe(0);
  expect((JSON.parse(stdout) as { backends: unknown[] }).backends.length).toBe(600);
}, 60_000);

test("a reader that never reads delays exit only until the drain timeout", async () => {
  // The child writes 1 MiB to a pipe this test never reads, so the drain can never finish.
  const script = `
    import { drainProcessOutput } from ${JSON.stringify(join(import.meta.dir, "..", "src", "process-output.ts"))};
    process.stdout.write("x".repeat(1024 * 1024));
    process.exitCode = await drainProcessOutput(0, 500);
    process.exit();
  `;
  // `sleep` keeps the read end of a FIFO open and never reads. Bash prints the child's exit
  // status, then ends the reader by its process id.
  const fifo = join(tempDir(), "stdout.fifo");
  const pipeline = `mkfifo "$2"; sleep 60 < "$2" & reader=$!; "$0" -e "$1" > "$2"; code=$?; kill $reader; echo "exit $code"`;
  const child = trackChild(Bun.spawn(["bash", "-c", pipeline, process.execPath, script, fifo], { stdout: "pipe", stderr: "inherit" }));
  cleanup.push(() => child.kill("SIGKILL"));
  const output = await within("exit after the drain timeout", new Response(child.stdout).text(), 20_000);

  // The exit status is the one the process chose; the lost output cannot be reported.
  expect(output.trim()).toBe("exit 0");
}, 30_000);
