import type { BackendSet } from "../backend-set.ts";
import type { Provider, PublishBackendSet } from "./provider.ts";

/**
 * A fixed backend set, from `--backend` flags (and the config file's `backends` list
 * when the file is not watched). It publishes once, at start.
 */
export class StaticProvider implements Provider {
  readonly name: string;
  readonly #set: BackendSet;

  constructor(set: BackendSet, name = "static") {
    this.#set = set;
    this.name = name;
  }

  start(publish: PublishBackendSet): void {
    publish(this.#set);
  }

  stop(): void {}
}
