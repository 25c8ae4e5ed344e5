import type { FileConfig } from "./config.ts";
import { type Logger, silentLogger } from "./logger.ts";
import type { Server } from "./server.ts";

/**
 * Applies the config file's `backends[].disabled: true` keys to the running balancer.
 *
 * A key applies when the file is loaded at start and at each reload that adds or drops it.
 * So `tinylb enable` overrides a key until a reload changes that key, as HAProxy's runtime
 * API overrides the configuration until a reload. A key that a reload adds disables the id. A key
 * that a reload drops enables the id only when the mark came from the file, so a mark the
 * operator made with `tinylb disable` stays.
 */
export class ConfigDisabledMarks {
  readonly #server: Server;
  readonly #log: Logger;
  /** Ids with the key in the config applied last; empty before the first one. */
  #marked = new Set<string>();

  constructor(server: Server, logger: Logger = silentLogger) {
    this.#server = server;
    this.#log = logger.with({ component: "file-provider" });
  }

  /**
   * Applies the keys of `config`, which the file provider has just published, against those
   * of the config applied before it.
   */
  apply(config: FileConfig): void {
    const marked = new Set(config.disabledBackends ?? []);
    for (const id of marked) {
      if (!this.#marked.has(id)) {
        this.#disable(id, config.backends?.find((backend) => backend.id === id)?.target);
      }
    }
    for (const id of this.#marked) {
      if (!marked.has(id)) {
        this.#enable(id);
      }
    }
    this.#marked = marked;
  }

  #disable(id: string, target: string | undefined): void {
    if (this.#server.disabled.disable(id, "config")) {
      this.#log.info("backend disabled by the config file", { backend: id, target });
    }
  }

  #enable(id: string): void {
    const disabled = this.#server.disabled;
    if (disabled.originOf(id) !== "config") {
      return;
    }

    disabled.enable(id);
    const backend = this.#server.set.get(id);
    this.#log.info("backend enabled: the config file no longer disables it", { backend: id, target: backend?.target });
    if (backend !== undefined) {
      // Like `tinylb enable`, since a backend that was out of the rotation has few connections.
      this.#server.slowStart.begin([backend], "enabled again");
    }
  }
}
