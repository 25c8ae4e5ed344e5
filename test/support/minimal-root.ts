import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";

/** A file to place in a root: read from `source` on this machine, written to `path` inside the root. */
export interface RootFile {
  source: string;
  path: string;
}

/**
 * Environment for programs started in a root: only the PATH that finds unshare, mount and
 * chroot on this machine, so nothing from the test's own environment leaks in.
 */
export const ROOT_ENV: Record<string, string> = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" };

/** Path of the tinylb binary inside every root. */
export const ROOT_BINARY = "/tinylb";

/** Folder of the arm64 glibc from Debian's libc6-arm64-cross package. */
export const ARM64_GLIBC_DIR = "/usr/aarch64-linux-gnu/lib";

/** The user-mode emulator from Debian's qemu-user-static package; it is linked statically. */
export const QEMU_AARCH64 = "/usr/bin/qemu-aarch64-static";

/**
 * Returns why roots cannot be used on this machine, or undefined when they can.
 *
 * A root needs chroot and a mount of /proc inside it, because a compiled Bun binary reads
 * /proc/self/exe to find its embedded code. Both need root and a kernel that lets this
 * process create a mount namespace.
 */
export function rootsUnsupportedReason(): string | undefined {
  if (process.getuid?.() !== 0) {
    return "chroot and mounting /proc need root; run the tests as root";
  }
  const dir = mkdtempSync(join(tmpdir(), "tinylb-root-check-"));
  try {
    const check = Bun.spawnSync(["unshare", "--mount", "--propagation", "private", "--", "mount", "-t", "proc", "proc", dir], {
      stdout: "ignore",
      stderr: "pipe",
    });
    if (!check.success) {
      return `mounting /proc in a new mount namespace failed: ${check.stderr.toString().trim()}`;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  return undefined;
}

/**
 * A throwaway root folder holding the tinylb binary and only the files passed in, which
 * programs are started in with chroot.
 *
 * Each start runs in its own private mount namespace that mounts /proc inside the root
 * and then changes root: the kernel removes that mount when the last process of the
 * namespace exits, so no mount outlives a test, even one that crashes.
 */
export class MinimalRoot {
  readonly dir: string;

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** Creates a root with `binary` at /tinylb plus `files`, each copied with symbolic links followed. */
  static create(binary: string, files: RootFile[]): MinimalRoot {
    const dir = mkdtempSync(join(tmpdir(), "tinylb-root-"));
    mkdirSync(join(dir, "proc"));
    for (const file of [{ source: binary, path: ROOT_BINARY }, ...files]) {
      const destination = join(dir, file.path);
      mkdirSync(dirname(destination), { recursive: true });
      copyFileSync(file.source, destination);
      chmodSync(destination, 0o755);
    }

    return new MinimalRoot(dir);
  }

  /** Lists every regular file in the root as a sorted absolute path inside it. */
  files(): string[] {
    return readdirSync(this.dir, { recursive: true, withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => "/" + relative(this.dir, join(entry.parentPath, entry.name)))
      .sort();
  }

  /**
   * Returns the command line that runs `program` (a path inside the root) with /proc mounted
   * and the root changed. With `readOnly`, the root is bind-mounted read-only first, as a
   * container with a read-only root filesystem has it.
   */
  command(program: string[], options: { readOnly?: boolean } = {}): string[] {
    const readOnly = options.readOnly ? 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" && ' : "";
    const script = `${readOnly}mount -t proc proc "$0/proc" && exec chroot "$0" "$@"`;

    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, this.dir, ...program];
  }

  /** Runs `program` in the root to completion and returns its exit code and output. */
  run(program: string[]): { exitCode: number; stdout: string; stderr: string } {
    const result = Bun.spawnSync(this.command(program), { stdout: "pipe", stderr: "pipe", env: ROOT_ENV });

    return { exitCode: result.exitCode, stdout: result.stdout.toString(), stderr: result.stderr.toString() };
  }

  /**
   * Deletes the root.
   *
   * @throws {Error} when /proc is still mounted in it, which would mean a namespace leaked.
   */
  remove(): void {
    const mounts = readFileSync("/proc/self/mountinfo", "utf8");
    if (mounts.includes(this.dir)) {
      throw new Error(`invariant violated: ${this.dir} is still mounted in the test's mount namespace`);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  [Symbol.dispose](): void {
    this.remove();
  }
}

/** Returns the libraries `ldd` lists for a binary of this machine, each at the path ldd names. */
export function lddLibraries(binary: string): RootFile[] {
  const result = Bun.spawnSync(["ldd", binary], { stdout: "pipe", stderr: "pipe" });
  if (!result.success) {
    throw new Error(`ldd ${binary} failed: ${result.stderr.toString().trim()}`);
  }

  return [...result.stdout.toString().matchAll(/(\/\S+) \(0x/g)].map((match) => ({ source: match[1]!, path: match[1]! }));
}

/**
 * Returns the arm64 glibc libraries an arm64 binary loads, found by running the arm64
 * dynamic loader's `--list` (what ldd does) under qemu against Debian's cross libraries.
 * Inside the root they go where an arm64 Debian system keeps them: the loader in /lib and
 * the rest in /lib/aarch64-linux-gnu.
 */
export function arm64GlibcLibraries(binary: string): RootFile[] {
  const loader = join(ARM64_GLIBC_DIR, "ld-linux-aarch64.so.1");
  const result = Bun.spawnSync([QEMU_AARCH64, loader, "--library-path", ARM64_GLIBC_DIR, "--list", binary], {
    stdout: "pipe",
    stderr: "pipe",
  });
  if (!result.success) {
    throw new Error(`listing the libraries of ${binary} failed: ${result.stderr.toString().trim()}`);
  }

  const files: RootFile[] = [];
  for (const match of result.stdout.toString().matchAll(/^\s*(\S+) => (\/\S+) \(0x/gm)) {
    const [, name, source] = match as unknown as [string, string, string];
    const path = name.startsWith("/") ? name : `/lib/aarch64-linux-gnu/${name}`;
    files.push({ source, path });
  }

  return files;
}

/** Returns the musl dynamic loader from Debian's musl package, which is also musl's libc. */
export function muslLoader(arch: "x86_64" | "aarch64"): RootFile {
  const path = `/lib/ld-musl-${arch}.so.1`;

  return { source: path, path };
}

/**
 * Returns the C++ runtime that Bun's musl binaries link (libstdc++.so.6 and libgcc_s.so.1,
 * built against musl), or undefined when this machine has none.
 *
 * Debian ships no musl build of them, so they are read from the folder named by
 * TINYLB_MUSL_CXX_RUNTIME_X86_64 or TINYLB_MUSL_CXX_RUNTIME_AARCH64 (for example the files
 * of Alpine's libstdc++ and libgcc packages) and placed in /usr/lib of the root.
 */
export function muslCxxRuntime(arch: "x86_64" | "aarch64"): RootFile[] | undefined {
  const dir = process.env[`TINYLB_MUSL_CXX_RUNTIME_${arch.toUpperCase()}`];
  if (dir === undefined || dir === "") {
    return undefined;
  }
  const names = ["libstdc++.so.6", "libgcc_s.so.1"];
  if (!names.every((name) => existsSync(join(dir, name)))) {
    throw new Error(`${dir} must contain ${names.join(" and ")} built against musl`);
  }

  return names.map((name) => ({ source: join(dir, name), path: `/usr/lib/${name}` }));
}
