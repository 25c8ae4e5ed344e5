import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BackendSources, startBackendSources } from "../../src/backend-sources.ts";
import { parseArgs } from "../../src/cli.ts";
import type { CounterRetentionSettings } from "../../src/counter-retention.ts";
import { Logger } from "../../src/logger.ts";
import { Server } from "../../src/server.ts";
import { resolveSettings } from "../../src/settings.ts";
import { relayThreadCount, startRelayWorkers, type WorkerPool } from "../../src/worker-pool.ts";

/**
 * A balancer built in the test process the way `tinylb` builds it from a command line, with
 * the real providers, admin API and relay workers, plus a counter retention that no flag
 * sets. The admin API listens on a Unix socket in a temporary folder. Dispose with `stop()`.
 */
export class InProcessBalancer {
  readonly server: Server;
  readonly sources: BackendSources;
  readonly workers: WorkerPool | undefined;
  readonly adminPath: string;
  /** Errors the main thread logged; relay workers write theirs to stderr. */
  readonly logLines: string[];
  readonly #dir: string;

  private constructor(parts: { server: Server; sources: BackendSources; workers: WorkerPool | undefined; adminPath: string; logLines: string[]; dir: string }) {
    this.server = parts.server;
    this.sources = parts.sources;
    this.workers = parts.workers;
    this.adminPath = parts.adminPath;
    this.logLines = parts.logLines;
    this.#dir = parts.dir;
  }

  /** Starts a balancer on 127.0.0.1 with an admin API and `args` (such as `--workers 2`), in the order `runBalancer` uses. */
  static async start(args: string[], counterRetention: CounterRetentionSettings): Promise<InProcessBalancer> {
    const dir = mkdtempSync(join(tmpdir(), "tinylb-in-process-"));
    const adminPath = join(dir, "admin.sock");
    const cli = parseArgs(["--listen", "127.0.0.1:0", "--admin", `unix:${adminPath}`, ...args]);
    const settings = resolveSettings(cli);
    const logLines: string[] = [];
    const logger = new Logger({ level: "error", sink: (line) => logLines.push(line) });
    const threads = relayThreadCount(settings);
    const server = new Server({ listen: settings.listen, threads, reusePort: threads > 1, logger, counterRetention });
    const sources = await startBackendSources(cli, settings, server, logger);
    await server.start();
    sources.startStateFile();
    const workers = await startRelayWorkers(settings, server, logger);
    await sources.startAdmin();

    return new InProcessBalancer({ server, sources, workers, adminPath, logLines, dir });
  }

  /** The TCP port clients connect to. */
  get port(): number {
    const address = this.server.listeners[0]!.address;

    return address.kind === "tcp" ? address.port : 0;
  }

  /** Sends a request to the admin API and returns the response, which must be a success. */
  async admin(method: string, path: string, body?: unknown): Promise<Response> {
    const response = await fetch(`http://localhost${path}`, {
      unix: this.adminPath,
      method,
      body: body === undefined ? undefined : JSON.stringify(body),
      headers: { "content-type": "application/json" },
    } as RequestInit);
    if (!response.ok) {
      throw new Error(`admin request ${method} ${path} failed: ${response.status} ${await response.text()}`);
    }

    return response;
  }

  /** Reads /metrics and returns the value of each sample of `name` by its backend label, and the direction label if any. */
  async backendSamples(name: string): Promise<Map<string, number>> {
    const text = await (await this.admin("GET", "/metrics")).text();
    const samples = new Map<string, number>();
    const pattern = new RegExp(`^${name}\\{backend="([^"]*)"(?:,direction="([a-z_]+)")?\\} (\\d+)$`, "gm");
    for (const match of text.matchAll(pattern)) {
      const key = match[2] === undefined ? match[1]! : `${match[1]} ${match[2]}`;
      samples.set(key, Number(match[3]));
    }

    return samples;
  }

  /** Stops the providers, the admin API, the server and its workers, and removes the temporary folder. */
  async stop(): Promise<void> {
    await this.sources.stop();
    await this.server.shutdown(0);
    await this.workers?.shutdown(0);
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
