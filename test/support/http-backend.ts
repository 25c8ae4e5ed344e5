import type { Server, Subprocess } from "bun";
import { join } from "node:path";
import { trackChild } from "./child-processes.ts";

/**
 * A real HTTP backend on 127.0.0.1, for health tests. `GET /readyz` returns
 * `readyStatus` after `readyDelayMs`, and every other path returns 200 with the backend's id.
 */
export class HttpBackend {
  readonly id: string;
  readyStatus = 200;
  readyDelayMs = 0;
  /** Requests to paths other than /readyz. */
  served = 0;
  readonly server: Server<undefined>;

  constructor(id: string) {
    this.id = id;
    this.server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: async (request) => {
        if (new URL(request.url).pathname === "/readyz") {
          if (this.readyDelayMs > 0) {
            await Bun.sleep(this.readyDelayMs);
          }

          return new Response(this.readyStatus === 200 ? "ok" : "not ready", { status: this.readyStatus });
        }
        this.served++;

        return new Response(this.id);
      },
    });
  }

  get port(): number {
    return this.server.port!;
  }

  get target(): string {
    return `127.0.0.1:${this.port}`;
  }

  stop(): void {
    this.server.stop(true);
  }
}

/** Program a backend child process runs: the same responses as HttpBackend, on the port given. */
const CHILD_MAIN = join(import.meta.dir, "http-backend-main.ts");

/**
 * An HTTP backend in a child process, so a test can kill it and start it again on the
 * same port. The first start uses port 0 and reads the bound port from the child.
 */
export class HttpBackendProcess {
  readonly id: string;
  port = 0;
  #child: Subprocess<"ignore", "pipe", "inherit"> | undefined;

  constructor(id: string) {
    this.id = id;
  }

  get target(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Starts the child on `this.port` (0 the first time) and waits for its port. */
  async start(): Promise<void> {
    const child = trackChild(Bun.spawn([process.execPath, CHILD_MAIN, this.id, String(this.port)], { stdin: "ignore", stdout: "pipe", stderr: "inherit" }));
    this.#child = child;
    const reader = child.stdout.getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) {
        throw new Error(`backend process ${this.id} exited before printing its port`);
      }
      text += new TextDecoder().decode(value);
    }
    reader.releaseLock();
    this.port = Number(text.trim());
  }

  /** Kills the child with SIGKILL, as a crash would, and waits for it to exit. */
  async kill(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await child.exited;
    }
  }
}
