/**
 * The release build: one binary per Linux target with a name that says the target, a
 * SHA256SUMS file that `sha256sum -c` accepts, ELF headers that match each target, and an
 * x64 binary that runs on a CPU without AVX2.
 */
import { beforeAll, expect, test } from "bun:test";
import { closeSync, openSync, readdirSync, readFileSync, readSync } from "node:fs";
import { join } from "node:path";
import { TestBackend, TestClient } from "./support/backends.ts";
import { type ReleaseBuild, releaseBuild } from "./support/release-build.ts";
import { BINARY, listenedPort, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor } from "./support/wait.ts";
import { VERSION } from "../src/version.ts";

/** Per-test backstop, passed to each test because Bun 1.4.4 ignores `timeout` in bunfig.toml. */
const TEST_TIMEOUT_MS = 120_000;
const BUILD_TIMEOUT_MS = 300_000;
/** qemu-user emulates every instruction, so starts under it take seconds; this deadline is a backstop. */
const EMULATED_START_TIMEOUT_MS = 60_000;
const QEMU_X86_64 = "/usr/bin/qemu-x86_64-static";

const EM_X86_64 = 0x3e;
const EM_AARCH64 = 0xb7;

/** What each release file must be: its ELF machine and the dynamic loader it names. */
const EXPECTED_TARGETS = [
  { name: "linux-x64", machine: EM_X86_64, interpreter: "/lib64/ld-linux-x86-64.so.2" },
  { name: "linux-x64-baseline", machine: EM_X86_64, interpreter: "/lib64/ld-linux-x86-64.so.2" },
  { name: "linux-x64-musl", machine: EM_X86_64, interpreter: "/lib/ld-musl-x86_64.so.1" },
  { name: "linux-arm64", machine: EM_AARCH64, interpreter: "/lib/ld-linux-aarch64.so.1" },
  { name: "linux-arm64-musl", machine: EM_AARCH64, interpreter: "/lib/ld-musl-aarch64.so.1" },
];

let release: ReleaseBuild;
beforeAll(async () => {
  release = await releaseBuild();
}, BUILD_TIMEOUT_MS);

/** Reads the ELF machine and the PT_INTERP path from the first 64 KiB of a 64-bit little-endian ELF file. */
function elfHeader(path: string): { machine: number; interpreter: string } {
  const head = Buffer.alloc(64 * 1024);
  const fd = openSync(path, "r");
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  expect(head.subarray(0, 4).toString("latin1")).toBe("\x7fELF");

  const programHeaders = Number(head.readBigUInt64LE(0x20));
  const entrySize = head.readUInt16LE(0x36);
  const count = head.readUInt16LE(0x38);
  const PT_INTERP = 3;
  let interpreter = "";
  for (let i = 0; i < count; i++) {
    const entry = programHeaders + i * entrySize;
    if (head.readUInt32LE(entry) === PT_INTERP) {
      const offset = Number(head.readBigUInt64LE(entry + 8));
      const size = Number(head.readBigUInt64LE(entry + 32));
      interpreter = head.subarray(offset, offset + size).toString("latin1").replace(/\0+$/, "");
    }
  }

  return { machine: head.readUInt16LE(0x12), interpreter };
}

test("release build writes one binary per target", () => {
  const names = readdirSync(release.dir).sort();

  expect(names).toEqual(["SHA256SUMS", ...EXPECTED_TARGETS.map((target) => `tinylb-${target.name}`)].sort());
});

test("SHA256SUMS passes sha256sum -c", () => {
  const check = Bun.spawnSync(["sha256sum", "--check", "--strict", "SHA256SUMS"], { cwd: release.dir, stdout: "pipe", stderr: "pipe" });
  const lines = readFileSync(join(release.dir, "SHA256SUMS"), "utf8").trimEnd().split("\n");

  expect(check.stderr.toString()).toBe("");
  expect(check.exitCode).toBe(0);
  expect(lines.map((line) => line.split("  ")[1]).sort()).toEqual(EXPECTED_TARGETS.map((target) => `tinylb-${target.name}`).sort());
  for (const line of lines) {
    expect(line).toMatch(/^[0-9a-f]{64} {2}tinylb-[a-z0-9-]+$/);
  }
});

test.each(EXPECTED_TARGETS)("$name is an ELF file for its target", ({ name, machine, interpreter }) => {
  const header = elfHeader(join(release.dir, `tinylb-${name}`));

  expect(header.machine).toBe(machine);
  expect(header.interpreter).toBe(interpreter);
});

test("host binary --version names commit, Bun and target", () => {
  const result = Bun.spawnSync([BINARY, "--version"], { stdout: "pipe", stderr: "pipe" });

  expect(result.exitCode).toBe(0);
  const target = `bun-${process.platform}-${process.arch}`;
  // Other test runs may rebuild dist/tinylb at another commit, so only the commit's form is checked here.
  expect(result.stdout.toString()).toMatch(new RegExp(`^tinylb ${VERSION} \\(commit [0-9a-f]{12}, bun ${Bun.version}, target ${target}\\)\n$`));
});

test.each(EXPECTED_TARGETS.filter((target) => target.machine === EM_X86_64 && !target.name.endsWith("musl")))(
  "$name --version names the build's commit",
  ({ name }) => {
    const result = Bun.spawnSync([join(release.dir, `tinylb-${name}`), "--version"], { stdout: "pipe", stderr: "pipe" });

    expect(result.exitCode).toBe(0);
    expect(result.stdout.toString()).toBe(`tinylb ${VERSION} (commit ${release.commit}, bun ${Bun.version}, target bun-${name})\n`);
  },
);

test("linux-x64-baseline balances on a CPU without AVX2", async () => {
  // Under qemu-user with -cpu Nehalem, CPUID reports SSE4.2 but no AVX or AVX2, so a start-up
  // CPU check or Bun's run-time dispatch finds an old CPU. NOTE: qemu 7.2 still executes AVX2
  // instructions under that model, so this does not catch code that uses AVX2 without checking.
  using first = TestBackend.echo("first");
  using second = TestBackend.echo("second");
  const command = [QEMU_X86_64, "-cpu", "Nehalem", join(release.dir, "tinylb-linux-x64-baseline")];
  const version = Bun.spawnSync([...command, "--version"], { stdout: "pipe", stderr: "pipe" });
  expect(version.stdout.toString()).toContain("target bun-linux-x64-baseline");

  // The admin socket is off so that this run shares no /run/tinylb path with other test runs.
  const args = ["--listen", "127.0.0.1:0", "--admin", "off", "--backend", `first=${first.target}`, "--backend", `second=${second.target}`];
  await using balancer = TinylbProcess.start(args, { command });
  await balancer.waitForLog("tinylb started", EMULATED_START_TIMEOUT_MS);
  const port = listenedPort(balancer.stderr);
  const greetings: string[] = [];
  for (let i = 0; i < 2; i++) {
    using client = await TestClient.connect(port);
    await waitFor("greeting through the balancer", () => client.firstLine !== "", EMULATED_START_TIMEOUT_MS);
    greetings.push(client.firstLine);
  }

  expect(greetings).toEqual(["first", "second"]);
  expect(await balancer.stop()).toBe(0);
}, TEST_TIMEOUT_MS);
