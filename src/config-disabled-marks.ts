import type { FileConfig } from "./config.ts";
import { type Logger, silentLogger } from "./logger.ts";
import type { Server } from "./server.ts";

/** Log component of the lines about the config file's `disabled` keys. */
const COMPONENT = "file-provider";

/**
 * Logs that the config file's `disabled` key of backend `id` is ignored, because `provider`
 * takes precedence over the file and publishes the id too. `tinylb check` logs it for the
 * `--backend` flags (provider `static`) as a start does.
 */
export function warnIgnoredDisabledKey(logger: Logger, id: string, provider: string): void {
  logger.with({ component: COMPONENT }).warn("disabled key in the config file ignored: a provider that takes precedence publishes the backend id", { backend: id, provider });
}

/**
 * Applies the config file's `backends[].disabled: true` keys to the running balancer.
 *
 * A key applies when the file is loaded at start and at each reload that adds or drops it.
 * So `tinylb enable` overrides a key until a reload changes that key, as HAProxy's runtime
 * API overrides the configuration until a reload. A key that a reload adds disables the id. A key
 * that a reload drops enables the id only when the mark came from the file, so a mark the
 * operator made with `tinylb disable` stays.
 *
 * A key acts only while the file's entry is the one in the set. When a provider that takes
 * precedence over the file (the `--backend` flags) publishes the id too, with any target, the
 * key is ignored with a warning.
 */
export class ConfigDisabledMarks {
  readonly #server: Server;
  readonly #log: Logger;
  readonly #outrankingProvider: (id: string) => string | undefined;
  /** Ids with the key in the config applied last whose file entry is in the set. Empty before the first config. */
  #marked = new Set<string>();
  /** Ids with the key in the config applied last that another provider's entry outranks. */
  #ignored = new Set<string>();

  /**
   * @param outrankingProvider returns the provider that takes precedence over the file and
   *   publishes `id`, or undefined when the file's entry for `id` would be the one in the set.
   */
  constructor(server: Server, outrankingProvider: (id: string) => string | undefined, logger: Logger = silentLogger) {
    this.#server = server;
    this.#outrankingProvider = outrankingProvider;
    this.#log = logger.with({ component: COMPONENT });
  }

  /**
   * Applies the keys of `config`, which the file provider has just published, against those
   * of the config applied before it.
   */
  apply(config: FileConfig): void {
    const marked = new Set<string>();
    const ignored = new Set<string>();
    for (const id of config.disabledBackends ?? []) {
      const provider = this.#outrankingProvider(id);
      if (provider === undefined) {
        marked.add(id);
      } else {
        ignored.add(id);
        if (!this.#ignored.has(id)) {
          warnIgnoredDisabledKey(this.#log, id, provider);
        }
      }
    }
    this.#ignored = ignored;

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
