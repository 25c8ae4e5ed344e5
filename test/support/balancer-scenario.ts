import { BackendSetUnion } from "../../src/backend-set-union.ts";
import type { Provider } from "../../src/providers/provider.ts";
import { Server } from "../../src/server.ts";
import { TestBackend, TestClient } from "./backends.ts";
import { LogLines } from "./log-lines.ts";
import { waitFor } from "./wait.ts";

/**
 * A Server on 127.0.0.1 fed by providers through a BackendSetUnion, with echo backends
 * and collected log lines, for provider scenario tests. Dispose with `close()`.
 */
export class BalancerScenario {
  readonly log = new LogLines();
  readonly server: Server;
  readonly union: BackendSetUnion;
  readonly backends = new Map<string, TestBackend>();
  readonly clients: TestClient[] = [];
  readonly providers: Provider[] = [];

  constructor() {
    this.server = new Server({ listen: [{ kind: "tcp", host: "127.0.0.1", port: 0 }], logger: this.log.logger });
    this.union = new BackendSetUnion((set, cause) => this.server.applySet(set, { provider: cause }), this.log.logger);
  }

  /** Starts one greeting echo backend per id. */
  startBackends(ids: string[]): void {
    for (const id of ids) {
      this.backends.set(id, TestBackend.echo(id));
    }
  }

  /** Target of the echo backend with this id. */
  target(id: string): string {
    const backend = this.backends.get(id);
    if (backend === undefined) {
      throw new Error(`no test backend "${id}"`);
    }

    return backend.target;
  }

  /** Registers and starts providers in order, then binds the listener. */
  async start(...providers: Provider[]): Promise<void> {
    for (const provider of providers) {
      this.providers.push(provider);
      await provider.start(this.union.register(provider.name));
    }
    await this.server.start();
  }

  get port(): number {
    const address = this.server.listeners[0]!.address;

    return address.kind === "tcp" ? address.port : 0;
  }

  /** The running set as `id=target` pairs. */
  get running(): string {
    return this.server.set.describe();
  }

  /** Connects clients until one is attached to each of `ids`; returns them by id. */
  async connectEach(ids: string[]): Promise<Map<string, TestClient>> {
    const byId = new Map<string, TestClient>();
    for (let attempt = 0; attempt < ids.length * 4 && byId.size < ids.length; attempt++) {
      const client = await TestClient.connect(this.port);
      this.clients.push(client);
      await waitFor("greeting", () => client.firstLine !== "" || client.closed);
      if (ids.includes(client.firstLine) && !byId.has(client.firstLine)) {
        byId.set(client.firstLine, client);
      } else {
        client.close();
      }
    }
    if (byId.size < ids.length) {
      throw new Error(`could not reach every backend of ${ids.join(",")}; reached ${[...byId.keys()].join(",")}`);
    }

    return byId;
  }

  /** Sends a line through a client and waits for the echo. */
  static async echo(client: TestClient, text: string): Promise<void> {
    client.socket.write(`${text}\n`);
    await waitFor(`echo of "${text}"`, () => client.received.includes(`${text}\n`) || client.closed);
    if (!client.received.includes(`${text}\n`)) {
      throw new Error(`client closed before the echo of "${text}"`);
    }
  }

  /** Stops providers, clients, the server and backends, and checks that the pool emptied. */
  async close(): Promise<void> {
    for (const provider of this.providers) {
      await provider.stop();
    }
    for (const client of this.clients) {
      if (!client.closed) {
        client.close();
      }
    }
    await this.server.shutdown(0);
    for (const backend of this.backends.values()) {
      backend.stop();
    }
    await waitFor("pool to empty", () => this.server.activeCount === 0);
  }
}
