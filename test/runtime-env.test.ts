/**
 * A compiled binary must read NODE_ENV and every other variable from the machine it runs on.
 * Bun replaces `process.env.NODE_ENV` with the build machine's value when it bundles, unless
 * the build passes `--env=disable`. These tests build with a marked environment and check
 * that none of it reaches the binary.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TinylbProcess } from "./support/tinylb-process.ts";

const ROOT = join(import.meta.dir, "..");
/** Per-test backstop, passed to each test because Bun 1.4.4 ignores `timeout` in bunfig.toml. */
const TEST_TIMEOUT_MS = 60_000;

/** Values only the build's environment holds, so finding one in the binary proves it was inlined. */
const BUILD_NODE_ENV = `build-node-env-${crypto.randomUUID()}`;
const BUILD_OTHER = `build-other-${crypto.randomUUID()}`;

let workDir: string;
let binary: string;

beforeAll(() => {
  workDir = mkdtempSync(join(tmpdir(), "tinylb-runtime-env-"));
  const name = `linux-${process.arch}`;
  const build = Bun.spawnSync([process.execPath, "build.ts", "--target", name, "--outdir", workDir], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", NODE_ENV: BUILD_NODE_ENV, TINYLB_BUILD_OTHER: BUILD_OTHER },
  });
  if (!build.success) {
    throw new Error(`bun build.ts --target ${name} failed: ${build.stderr.toString()}`);
  }
  binary = join(workDir, `tinylb-${name}`);
}, TEST_TIMEOUT_MS);

afterAll(() => {
  rmSync(workDir, { recursive: true, force: true });
});

/** Starts the binary at debug level in `cwd` with `env` and returns the `runtime` log line. */
async function runtimeLine(env: Record<string, string>, cwd: string): Promise<string> {
  await using balancer = TinylbProcess.start(["--listen", "127.0.0.1:0", "--admin", "off", "--log-level", "debug"], { command: [binary], env, cwd });
  await balancer.waitForLog(/DEBUG runtime .*\n/);
  expect(await balancer.stop()).toBe(0);

  return /DEBUG runtime .*/.exec(balancer.stderr)![0];
}

test("binary holds no build environment value", () => {
  const contents = readFileSync(binary).toString("latin1");

  expect(contents.includes(BUILD_NODE_ENV)).toBe(false);
  expect(contents.includes(BUILD_OTHER)).toBe(false);
});

test("binary reads NODE_ENV where it runs", async () => {
  const runNodeEnv = `run-node-env-${crypto.randomUUID()}`;
  const line = await runtimeLine({ PATH: "/usr/bin:/bin", NODE_ENV: runNodeEnv }, workDir);

  expect(line).toContain(`nodeEnv=${runNodeEnv}`);
}, TEST_TIMEOUT_MS);

test("binary sees NODE_ENV unset where it runs", async () => {
  const line = await runtimeLine({ PATH: "/usr/bin:/bin" }, workDir);

  expect(line).toContain("nodeEnv=(unset)");
}, TEST_TIMEOUT_MS);

test("binary ignores a .env file in its folder", async () => {
  const runDir = mkdtempSync(join(workDir, "run-"));
  writeFileSync(join(runDir, ".env"), "NODE_ENV=from-dotenv-file\n");
  const line = await runtimeLine({ PATH: "/usr/bin:/bin" }, runDir);

  expect(line).toContain("nodeEnv=(unset)");
}, TEST_TIMEOUT_MS);
