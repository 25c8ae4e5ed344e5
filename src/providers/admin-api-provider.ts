import type { Backend } from "../backend.ts";
import { BackendSet } from "../backend-set.ts";
import type { Provider, PublishBackendSet } from "./provider.ts";

/**
 * The backends set through the admin API (`PUT /v1/backends`, `PUT` and `DELETE
 * /v1/backends/{id}`), kept in memory only. With a state file, the ones saved by the last
 * run are passed in as `initial`, so a restart keeps them.
 */
export class AdminApiProvider implements Provider {
  readonly name = "api";
  #set: BackendSet;
  #publish: PublishBackendSet | undefined;

  constructor(initial: BackendSet = BackendSet.EMPTY) {
    this.#set = initial;
  }

  /** The provider's current set. */
  get set(): BackendSet {
    return this.#set;
  }

  start(publish: PublishBackendSet): void {
    this.#publish = publish;
    publish(this.#set);
  }

  stop(): void {
    this.#publish = undefined;
  }

  /** Replaces the whole set. */
  replace(set: BackendSet): void {
    this.#update(set);
  }

  /** Adds a backend or changes its target; returns the backend it replaced, or undefined when the id is new. */
  put(backend: Backend): Backend | undefined {
    const previous = this.#set.get(backend.id);
    const others = this.#set.backends.filter((existing) => existing.id !== backend.id);
    this.#update(new BackendSet([...others, backend]));

    return previous;
  }

  /** Removes a backend; returns false when this provider has no backend with the id. */
  delete(id: string): boolean {
    if (this.#set.get(id) === undefined) {
      return false;
    }

    this.#update(new BackendSet(this.#set.backends.filter((backend) => backend.id !== id)));

    return true;
  }

  #update(set: BackendSet): void {
    this.#set = set;
    this.#publish?.(set);
  }
}
