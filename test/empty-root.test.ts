/**
 * Compiled binaries in minimal roots: each root contains the binary and only the shared
 * libraries it links, plus the statically linked qemu-aarch64-static for arm64, which
 * emulates the CPU. The glibc binaries balance real connections there to backends that listen
 * on loopback outside the root, which proves they need no Node.js, Bun or other file on the
 * machine. The musl binaries balance only where a musl C++ runtime is supplied, and otherwise
 * are checked to need nothing beyond musl and that runtime.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { TestBackend, TestClient } from "./support/backends.ts";
import {
  arm64GlibcLibraries,
  lddLibraries,
  MinimalRoot,
  muslCxxRuntime,
  muslLoader,
  QEMU_AARCH64,
  ROOT_BINARY,
  ROOT_ENV,
  type RootFile,
  rootsUnsupportedReason,
} from "./support/minimal-root.ts";
import { releaseBuild } from "./support/release-build.ts";
import { BINARY, listenedPort, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor } from "./support/wait.ts";

const unsupported = rootsUnsupportedReason();
if (unsupported !== undefined) {
  console.warn(`empty-root tests skipped: ${unsupported}`);
}
const describeRoots = unsupported === undefined ? describe : describe.skip;

/** Emulated arm64 starts take a few seconds on a 2-core machine; this deadline is a backstop. */
const START_TIMEOUT_MS = 60_000;
/** Per-test backstop, passed to each test because Bun 1.4.4 ignores `timeout` in bunfig.toml. */
const TEST_TIMEOUT_MS = 120_000;
/** The release build compiles five targets, about 5 s when Bun has every runtime cached. */
const BUILD_TIMEOUT_MS = 300_000;
const QEMU_IN_ROOT = "/qemu-aarch64-static";

/** Runs `--version` in the root and checks that it names the expected target. */
function expectVersion(root: MinimalRoot, program: string[], target: string): void {
  const result = root.run([...program, "--version"]);

  expect(result.stderr).toBe("");
  expect(result.exitCode).toBe(0);
  expect(result.stdout).toMatch(new RegExp(`^tinylb \\S+ \\(commit \\S+, bun ${Bun.version.replaceAll(".", "\\.")}, target ${target}\\)\\n$`));
}

/**
 * Starts the binary with `command`, which runs it in a root, in front of two greeting
 * backends on 127.0.0.1. Checks that four connections alternate between them and echo
 * through, then stops the binary with SIGTERM.
 */
async function expectBalancing(command: string[]): Promise<void> {
  using first = TestBackend.echo("first");
  using second = TestBackend.echo("second");
  const args = ["--listen", "127.0.0.1:0", "--backend", `first=${first.target}`, "--backend", `second=${second.target}`];
  await using balancer = TinylbProcess.start(args, { command, env: ROOT_ENV });
  await balancer.waitForLog("tinylb started", START_TIMEOUT_MS);
  const port = listenedPort(balancer.stderr);

  const greetings: string[] = [];
  for (let i = 0; i < 4; i++) {
    using client = await TestClient.connect(port);
    await waitFor("greeting through the balancer", () => client.firstLine !== "", START_TIMEOUT_MS);
    client.socket.write(`ping ${i}\n`);
    await waitFor("echo through the balancer", () => client.received.includes(`ping ${i}\n`), START_TIMEOUT_MS);
    greetings.push(client.firstLine);
  }

  expect(greetings).toEqual(["first", "second", "first", "second"]);
  expect(first.accepted).toBe(2);
  expect(second.accepted).toBe(2);
  expect(await balancer.stop()).toBe(0);
}

/** Lists the shared libraries the musl loader cannot find when it lists the binary's dependencies in the root. */
function missingMuslLibraries(root: MinimalRoot, program: string[]): string[] {
  const result = root.run(program);

  return [...result.stderr.matchAll(/Error loading shared library (\S+): No such file or directory/g)].map((match) => match[1]!);
}

function releaseBinary(dir: string, name: string): string {
  return join(dir, `tinylb-${name}`);
}

describeRoots("compiled binary in an empty root", () => {
  beforeAll(async () => {
    await releaseBuild();
  }, BUILD_TIMEOUT_MS);

  test("host binary balances with only ldd's libraries", async () => {
    const libraries = lddLibraries(BINARY);
    using root = MinimalRoot.create(BINARY, libraries);

    expect(root.files()).toEqual([ROOT_BINARY, ...libraries.map((file) => file.path)].sort());
    expectVersion(root, [ROOT_BINARY], `bun-${process.platform}-${process.arch}`);
    await expectBalancing(root.command([ROOT_BINARY]));
  }, TEST_TIMEOUT_MS);

  test("host binary balances on a read-only root", async () => {
    using root = MinimalRoot.create(BINARY, lddLibraries(BINARY));

    await expectBalancing(root.command([ROOT_BINARY], { readOnly: true }));
  }, TEST_TIMEOUT_MS);

  test("host binary fails without libm", () => {
    // Proves the root is sealed: a library left out is not found elsewhere on the machine.
    const libraries = lddLibraries(BINARY).filter((file) => !file.path.endsWith("/libm.so.6"));
    using root = MinimalRoot.create(BINARY, libraries);
    const result = root.run([ROOT_BINARY, "--version"]);

    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toContain("libm.so.6");
  });

  test("host binary aborts without /proc", () => {
    // A compiled Bun binary reads its embedded code through /proc/self/exe; the install
    // docs tell operators so, and this keeps that statement true.
    using root = MinimalRoot.create(BINARY, lddLibraries(BINARY));
    const result = Bun.spawnSync(["chroot", root.dir, ROOT_BINARY, "--version"], { stdout: "pipe", stderr: "pipe", env: ROOT_ENV });

    expect(result.exitCode).not.toBe(0);
    expect(result.stdout.toString()).not.toContain("tinylb");
  });

  for (const name of ["linux-x64", "linux-x64-baseline"]) {
    test(`${name} release binary balances with only ldd's libraries`, async () => {
      const binary = releaseBinary((await releaseBuild()).dir, name);
      using root = MinimalRoot.create(binary, lddLibraries(binary));

      expectVersion(root, [ROOT_BINARY], `bun-${name}`);
      await expectBalancing(root.command([ROOT_BINARY]));
    }, TEST_TIMEOUT_MS);
  }

  test("linux-arm64 release binary balances under qemu", async () => {
    const binary = releaseBinary((await releaseBuild()).dir, "linux-arm64");
    const libraries = arm64GlibcLibraries(binary);
    using root = MinimalRoot.create(binary, [...libraries, { source: QEMU_AARCH64, path: QEMU_IN_ROOT }]);

    expect(libraries.map((file) => file.path).sort()).toEqual([
      "/lib/aarch64-linux-gnu/libc.so.6",
      "/lib/aarch64-linux-gnu/libdl.so.2",
      "/lib/aarch64-linux-gnu/libm.so.6",
      "/lib/aarch64-linux-gnu/libpthread.so.0",
      "/lib/ld-linux-aarch64.so.1",
    ]);
    expectVersion(root, [QEMU_IN_ROOT, ROOT_BINARY], "bun-linux-arm64");
    await expectBalancing(root.command([QEMU_IN_ROOT, ROOT_BINARY]));
  }, TEST_TIMEOUT_MS);

  const muslTargets: { name: string; arch: "x86_64" | "aarch64"; emulator: string[] }[] = [
    { name: "linux-x64-musl", arch: "x86_64", emulator: [] },
    { name: "linux-arm64-musl", arch: "aarch64", emulator: [QEMU_IN_ROOT] },
  ];
  for (const { name, arch, emulator } of muslTargets) {
    const emulatorFiles: RootFile[] = emulator.length > 0 ? [{ source: QEMU_AARCH64, path: QEMU_IN_ROOT }] : [];

    test(`${name} release binary needs only musl and libstdc++`, async () => {
      const binary = releaseBinary((await releaseBuild()).dir, name);
      const loader = muslLoader(arch);
      using root = MinimalRoot.create(binary, [loader, ...emulatorFiles]);

      // Listing with nothing but the loader in the root shows what else the binary links.
      expect(missingMuslLibraries(root, [...emulator, loader.path, "--list", ROOT_BINARY])).toEqual(["libstdc++.so.6"]);
    }, TEST_TIMEOUT_MS);

    const cxxRuntime = muslCxxRuntime(arch);
    if (cxxRuntime === undefined) {
      console.warn(
        `${name} balancing test skipped: Debian ships no musl build of libstdc++.so.6 and libgcc_s.so.1; ` +
          `set TINYLB_MUSL_CXX_RUNTIME_${arch.toUpperCase()} to a folder holding them to run it`,
      );
    }
    test.skipIf(cxxRuntime === undefined)(`${name} release binary balances with musl`, async () => {
      const binary = releaseBinary((await releaseBuild()).dir, name);
      using root = MinimalRoot.create(binary, [muslLoader(arch), ...(cxxRuntime ?? []), ...emulatorFiles]);

      expectVersion(root, [...emulator, ROOT_BINARY], `bun-${name}`);
      await expectBalancing(root.command([...emulator, ROOT_BINARY]));
    }, TEST_TIMEOUT_MS);
  }
});
