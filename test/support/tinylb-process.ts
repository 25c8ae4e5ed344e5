import type { Subprocess } from "bun";
import { join } from "node:path";
import { waitFor, within } from "./wait.ts";
import { trackChild } from "./child-processes.ts";

/** Path of the compiled binary that `bun build.ts` writes. */
export const BINARY = join(import.meta.dir, "..", "..", "dist", "tinylb");

/**
 * A `dist/tinylb` child process with its stderr collected, for end-to-end tests.
 * Stop it with `stop()` (SIGTERM) or `kill()`; `[Symbol.asyncDispose]` kills it if still running.
 */
export class TinylbProcess {
  readonly process: Subprocess<"ignore", "pipe", "pipe">;
  stdout = "";
  stderr = "";

  private constructor(process: Subprocess<"ignore", "pipe", "pipe">) {
    this.process = process;
    void this.#collect(process.stdout, (text) => (this.stdout += text));
    void this.#collect(process.stderr, (text) => (this.stderr += text));
  }

  /**
   * Starts `dist/tinylb` with `args`, plus `--admin off` when `args` set no admin address.
   * `command` replaces `dist/tinylb` as the program and its first arguments, for a release binary or one started through chroot or an emulator.
   */
  static start(args: string[], options: { env?: Record<string, string>; cwd?: string; command?: string[] } = {}): TinylbProcess {
    const child = trackChild(Bun.spawn([...(options.command ?? [BINARY]), ...withAdminOff(args)], {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env: options.env ?? { PATH: process.env.PATH ?? "/usr/bin:/bin" },
      cwd: options.cwd,
    }));

    return new TinylbProcess(child);
  }

  get pid(): number {
    return this.process.pid;
  }

  /** Waits until stderr contains `text` (a log line), or throws with what was logged. */
  async waitForLog(text: string | RegExp, timeoutMs = 10_000): Promise<void> {
    const found = (): boolean => (typeof text === "string" ? this.stderr.includes(text) : text.test(this.stderr));
    try {
      await waitFor(`log ${String(text)}`, found, timeoutMs);
    } catch (error) {
      throw new Error(`${(error as Error).message}; stderr so far:\n${this.stderr}`);
    }
  }

  /** Sends a signal to the child. */
  signal(signal: NodeJS.Signals): void {
    this.process.kill(signal);
  }

  /** Sends SIGTERM and resolves with the exit code. */
  async stop(): Promise<number> {
    this.process.kill("SIGTERM");

    return await this.process.exited;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.process.exitCode === null && this.process.signalCode === null) {
      this.process.kill("SIGKILL");
      await this.process.exited;
    }
  }

  async #collect(stream: ReadableStream<Uint8Array>, append: (text: string) => void): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      append(decoder.decode(chunk, { stream: true }));
    }
  }
}

/**
 * Runs dist/tinylb with `args` as they are, without adding `--admin off`, until it exits, and
 * returns its exit code and output. It kills the child after 15 s, so that a start expected to
 * fail cannot hang the test. `command` replaces `dist/tinylb` as the program and its first
 * arguments, as for `TinylbProcess.start`.
 */
export async function runTinylb(args: string[], options: { cwd?: string; command?: string[] } = {}): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const child = trackChild(Bun.spawn([...(options.command ?? [BINARY]), ...args], { cwd: options.cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe" }));
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  try {
    const output = Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
    const [stdout, stderr, exitCode] = await within(`tinylb ${args.join(" ")} to exit`, output, 20_000);

    return { exitCode, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Puts `--admin off` first unless `args` pass an `--admin` flag or start with the `demo` or
 * `status` command. Without it every test run as root binds the same default admin socket,
 * /run/tinylb/admin.sock, and parallel runs compete for it.
 */
function withAdminOff(args: string[]): string[] {
  const command = args[0];
  if (command === "demo" || command === "status" || args.some((arg) => arg === "--admin" || arg.startsWith("--admin="))) {
    return args;
  }

  return ["--admin", "off", ...args];
}

/** Extracts the port a `listening` log line reports for a listener started with port 0. */
export function listenedPort(stderr: string): number {
  const match = /listening .*listener=[^\s]*:(\d+)/.exec(stderr);
  if (match === null) {
    throw new Error(`no "listening" line in stderr:\n${stderr}`);
  }

  return Number(match[1]);
}
