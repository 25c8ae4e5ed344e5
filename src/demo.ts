import type { Server as HttpServer } from "bun";
import { type Address, formatAddress } from "./address.ts";
import { createBackend } from "./backend.ts";
import { BackendSet } from "./backend-set.ts";
import { ListenError } from "./listener.ts";
import type { Logger } from "./logger.ts";
import { Server } from "./server.ts";

/** Listen address of the demo when `--listen` is not given. */
export const DEMO_LISTEN: Address = { kind: "tcp", host: "127.0.0.1", port: 7070 };

const DEMO_IDS = ["demo-1", "demo-2", "demo-3"];

/**
 * Runs the demo: three HTTP backends on loopback ports chosen by the kernel, each
 * greeting with its own id, balanced on one listener. Resolves with the exit code
 * after SIGINT or SIGTERM.
 *
 * @throws {ListenError} when the demo's listen address is taken.
 */
export async function runDemo(listen: Address[], logger: Logger): Promise<number> {
  const backends = DEMO_IDS.map((id) => startDemoBackend(id));
  const server = new Server({ listen: listen.length > 0 ? listen : [DEMO_LISTEN], logger });
  server.applySet(
    new BackendSet(backends.map(({ id, http }) => createBackend(id, `127.0.0.1:${http.port}`))),
  );

  try {
    await server.start();
  } catch (error) {
    stopBackends(backends);
    if (error instanceof ListenError) {
      // The listener's message may already advise another address; name the demo's flag there instead of twice.
      const example = "pick another address with --listen, such as: tinylb demo --listen 127.0.0.1:7171 (or npm run demo -- --listen 127.0.0.1:7171)";
      const message = error.message.includes("pick another address") ? error.message.replace("pick another address", example) : `${error.message}; ${example}`;
      throw new ListenError(message, { cause: error });
    }
    throw error;
  }

  printInstructions(server.listeners[0]!.address);

  return new Promise((resolve) => {
    const stop = (): void => {
      void server.shutdown(1000).then(() => {
        stopBackends(backends);
        process.stdout.write("demo stopped\n");
        resolve(0);
      });
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}

function startDemoBackend(id: string): { id: string; http: HttpServer<undefined> } {
  const http = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: () => new Response(`hello from ${id}\n`),
  });

  return { id, http };
}

function stopBackends(backends: { http: HttpServer<undefined> }[]): void {
  for (const { http } of backends) {
    void http.stop(true);
  }
}

/** A client cannot dial a wildcard address, so the hints name the loopback address of its family. */
const WILDCARD_LOOPBACK: Record<string, string> = { "0.0.0.0": "127.0.0.1", "::": "::1" };

function printInstructions(address: Address): void {
  const request = "printf 'GET / HTTP/1.0\\r\\n\\r\\n'";
  let curl: string;
  let nc: string;
  if (address.kind === "unix") {
    curl = `curl -s --unix-socket ${address.path} http://demo/`;
    nc = `nc -U ${address.path}`;
  } else {
    const host = WILDCARD_LOOPBACK[address.host] ?? address.host;
    curl = `curl -s http://${formatAddress({ ...address, host })}/`;
    nc = `nc ${host} ${address.port}`;
  }
  process.stdout.write(
    [
      `tinylb demo: balancing ${DEMO_IDS.join(", ")} on ${formatAddress(address)}`,
      `Try it: for i in 1 2 3 4; do ${curl}; done`,
      `   or: ${request} | ${nc}`,
      "Press Ctrl-C to stop.",
      "",
    ]
      .filter((line) => line !== "")
      .join("\n") + "\n",
  );
}
