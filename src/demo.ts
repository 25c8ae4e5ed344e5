import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Server as HttpServer } from "bun";
import type { Address } from "./address.ts";
import { createBackend } from "./backend.ts";
import { BackendSet } from "./backend-set.ts";
import { type BackendSources, startBackendSources } from "./backend-sources.ts";
import type { CliOptions } from "./cli.ts";
import { printInstructions } from "./demo-instructions.ts";
import { ListenError } from "./listener.ts";
import type { Logger } from "./logger.ts";
import { Server } from "./server.ts";
import { resolveSettings } from "./settings.ts";

/** Listen address of the demo when `--listen` is not given. */
export const DEMO_LISTEN: Address = { kind: "tcp", host: "127.0.0.1", port: 7070 };

/** Ids of the demo backends in the set at start. */
export const DEMO_IDS = ["demo-1", "demo-2", "demo-3"];

/** Id of the demo backend that runs outside the set, for the user to add through the admin API. */
export const SPARE_DEMO_ID = "demo-4";

/** A demo HTTP backend that greets with its own id. */
export interface DemoBackend {
  id: string;
  http: HttpServer<undefined>;
}

/**
 * Runs the demo: four HTTP backends on loopback ports chosen by the kernel, each greeting
 * with its own id, and a balancer on one listener whose set contains the first three. The
 * balancer serves the admin API on `--admin ADDR`, or else on a socket in a new private
 * folder under the system temp folder, which is removed at exit. Resolves with the exit code
 * after SIGINT or SIGTERM.
 *
 * @throws {ListenError} when the demo's listen or admin address is taken.
 * @throws {ConfigError} when the admin address is not allowed, such as a socket path too long.
 */
export async function runDemo(cli: CliOptions, logger: Logger): Promise<number> {
  const backends = DEMO_IDS.map((id) => startDemoBackend(id));
  const spare = startDemoBackend(SPARE_DEMO_ID);
  const adminFolder = cli.providers?.admin === undefined ? mkdtempSync(join(tmpdir(), "tinylb-demo-")) : undefined;
  const demoCli = demoOptions(cli, backends, adminFolder);
  const server = new Server({ listen: demoCli.listen, logger });
  const cleanUp = (): void => {
    stopBackends([...backends, spare]);
    if (adminFolder !== undefined) {
      rmSync(adminFolder, { recursive: true, force: true });
    }
  };

  let sources: BackendSources | undefined;
  try {
    sources = await startBackendSources(demoCli, resolveSettings(demoCli), server, logger);
    // Through the admin API's provider, so that `tinylb remove` can take them out of the set too.
    sources.api?.replace(demoBackendSet(backends));
    await startListener(server);
    await sources.startAdmin();
  } catch (error) {
    server.stopListening();
    await sources?.stop();
    cleanUp();
    throw error;
  }

  printInstructions({ address: server.listeners[0]!.address, ids: DEMO_IDS, admin: sources.admin?.address, spare });

  return new Promise((resolve) => {
    const stop = (): void => {
      void server.shutdown(1000).then(async () => {
        await sources.stop();
        cleanUp();
        process.stdout.write("demo stopped\n");
        resolve(0);
      });
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}

/**
 * Returns the command line of a balancer with the demo's listener and the admin API on `cli`'s
 * `--admin`, or else on `admin.sock` in `adminFolder`. With `--admin off`, the demo backends are
 * `--backend` flags.
 */
function demoOptions(cli: CliOptions, backends: DemoBackend[], adminFolder: string | undefined): CliOptions {
  const admin: Address | "off" = cli.providers?.admin ?? { kind: "unix", path: join(adminFolder!, "admin.sock") };

  return {
    command: "demo",
    listen: cli.listen.length > 0 ? cli.listen : [DEMO_LISTEN],
    backends: admin === "off" ? [...demoBackendSet(backends).backends] : [],
    providers: { admin },
  };
}

/**
 * Binds the demo's listener.
 *
 * @throws {ListenError} naming the demo's `--listen` flag in its advice.
 */
async function startListener(server: Server): Promise<void> {
  try {
    await server.start();
  } catch (error) {
    if (error instanceof ListenError) {
      // The listener's message may already advise another address; name the demo's flag there instead of twice.
      const example = "pick another address with --listen, such as: tinylb demo --listen 127.0.0.1:7171 (or npm run demo -- --listen 127.0.0.1:7171)";
      const message = error.message.includes("pick another address") ? error.message.replace("pick another address", example) : `${error.message}; ${example}`;
      throw new ListenError(message, { cause: error });
    }
    throw error;
  }
}

function demoBackendSet(backends: DemoBackend[]): BackendSet {
  return new BackendSet(backends.map(({ id, http }) => createBackend(id, `127.0.0.1:${http.port}`)));
}

function startDemoBackend(id: string): DemoBackend {
  const http = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: () => new Response(`hello from ${id}\n`),
  });

  return { id, http };
}

function stopBackends(backends: DemoBackend[]): void {
  for (const { http } of backends) {
    void http.stop(true);
  }
}
