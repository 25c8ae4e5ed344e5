import { type Backend, BackendError, createBackend } from "../backend.ts";
import { BackendSet } from "../backend-set.ts";
import { type Logger, silentLogger } from "../logger.ts";
import { FailureStreak } from "./failure-streak.ts";
import { ProviderHealth } from "./provider-health.ts";
import type { KubernetesAccess } from "./kubernetes-access.ts";
import { type ApiRoute, type EndpointSlice, EndpointSliceClient, type EndpointSliceEvent, KubernetesApiError } from "./kubernetes-watch.ts";
import type { Provider, PublishBackendSet } from "./provider.ts";
import { type BackoffOptions, ReconnectBackoff, sleepUnlessAborted } from "./reconnect-backoff.ts";
import { RemovedTargets } from "./removed-targets.ts";
import { SetPublisher, TooManyBackendsError } from "./set-publisher.ts";
import { STABLE_WATCH_MS, WatchSuccess } from "./watch-success.ts";

/** Settings of a Kubernetes provider. */
export interface KubernetesProviderOptions {
  /** The API server, its CA and the credentials. */
  access: KubernetesAccess;
  /**
   * Returns where to send requests, such as tinylb's own listener; undefined sends them to
   * `access.server`. It is called before each list and watch, so the route may change.
   */
  route?: () => ApiRoute | undefined;
  /**
   * Resolves once requests can be sent, such as when the seed backends are in the running
   * set so that `route` can reach an API server. Called once, before the first list; it
   * must resolve when `signal` aborts.
   */
  waitUntilReady?: (signal: AbortSignal) => Promise<void>;
  /** @default "default" */
  namespace?: string;
  /** @default "kubernetes" */
  service?: string;
  /** Name of the EndpointSlice port that becomes each backend's port. @default "https" */
  portName?: string;
  /**
   * Seconds the API server keeps one watch open before ending it. Each watch uses a random
   * value between this and twice this, as client-go's reflector does, so that watches do
   * not end in step.
   * @default 300
   */
  watchTimeoutSeconds?: number;
  backoff?: BackoffOptions;
  /**
   * Milliseconds each list page may take to be read in full, and a watch request to be
   * accepted (its response headers). A request that times out is a failure.
   * @default REQUEST_TIMEOUT_MS (10 s)
   */
  requestTimeoutMs?: number;
  /** Limit of one whole list, every page, and of one watch event, in bytes. @default MAX_RESPONSE_BYTES (16 MiB) */
  maxResponseBytes?: number;
  /** Largest set published; a larger one fails the fetch. @default MAX_PROVIDER_BACKENDS (10,000) */
  maxBackends?: number;
  /**
   * Milliseconds a watch must stay open, when it delivers no change event, before it ends a
   * failure streak and resets the back-off. A list alone never does, and neither does a
   * bookmark. A watch that ends sooner without a change event is a failure.
   * @default STABLE_WATCH_MS (10 s)
   */
  stableWatchMs?: number;
  /** @default a logger that writes nothing */
  logger?: Logger;
}

/** Seconds past the server-side watch timeout after which tinylb gives up on a silent watch. */
const WATCH_GRACE_SECONDS = 30;

/**
 * A provider that follows the EndpointSlices of the `kubernetes` service in the `default`
 * namespace: it lists them, then watches from the list's resource version with bookmarks.
 * Each ready endpoint address with the `https` port becomes a backend with the id
 * `kubernetes:ADDRESS`.
 *
 * After a dropped watch it watches again from the last resource version it saw. After 410
 * Gone ("resource version too old") it lists again. It never publishes an empty set: an
 * error or a response without ready addresses keeps the last set, so the seed backends of
 * the other providers stay the fallback.
 */
export class KubernetesProvider implements Provider {
  readonly name = "kubernetes";
  readonly #options: KubernetesProviderOptions;
  readonly #client: EndpointSliceClient;
  readonly #log: Logger;
  readonly #failures: FailureStreak;
  /** The last list or watch's result, for status and /metrics. */
  readonly health = new ProviderHealth();
  readonly #backoff: ReconnectBackoff;
  readonly #portName: string;
  readonly #slices = new Map<string, EndpointSlice>();
  #abort = new AbortController();
  #loop: Promise<void> | undefined;
  readonly #publisher: SetPublisher;
  /** Resource version to watch from; undefined until listed and after 410 Gone. */
  #resourceVersion: string | undefined;
  /** Addresses already logged as invalid, so each is logged once. */
  readonly #invalidAddresses = new Set<string>();
  readonly #removedTargets = new RemovedTargets();

  constructor(options: KubernetesProviderOptions) {
    this.#options = options;
    this.#client = new EndpointSliceClient(options.access, options.namespace ?? "default", options.service ?? "kubernetes", options.maxResponseBytes, options.requestTimeoutMs);
    this.#log = (options.logger ?? silentLogger).with({ component: "kubernetes-provider", provider: this.name });
    this.#publisher = new SetPublisher(this.#log, "no ready address with an https port in the EndpointSlices", options.maxBackends, this.health);
    this.#failures = new FailureStreak(this.#log, this.health);
    this.#backoff = new ReconnectBackoff(options.backoff);
    this.#portName = options.portName ?? "https";
  }

  /** Starts listing and watching in the background; returns at once. */
  start(publish: PublishBackendSet): void {
    if (this.#loop !== undefined) {
      throw new Error("invariant violated: provider kubernetes started twice");
    }
    this.#abort = new AbortController();
    this.#loop = this.#run(publish, this.#abort.signal);
  }

  /** Aborts the open request and waits for the loop to end; nothing is published after. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
    this.#loop = undefined;
  }

  async #run(publish: PublishBackendSet, signal: AbortSignal): Promise<void> {
    await this.#options.waitUntilReady?.(signal);
    if (signal.aborted) {
      return;
    }
    this.#log.info("following EndpointSlices", { source: this.#options.access.source, service: this.#options.service ?? "kubernetes" });

    while (!signal.aborted) {
      let listed = false;
      try {
        if (this.#resourceVersion === undefined) {
          await this.#list(publish, signal);
          listed = true;
        }
        const startedAt = performance.now();
        const proven = await this.#watch(publish, signal);
        if (!proven && !signal.aborted) {
          // A watch the server ends at once, even after a bookmark, is retried with back-off, not in a tight loop.
          const openMs = Math.round(performance.now() - startedAt);
          throw new Error(`the watch of ${this.#client.shownUrl(this.#options.route?.())} ended after ${openMs} ms without a change; check for a proxy or load balancer that cuts long responses`);
        }
      } catch (error) {
        if (signal.aborted) {
          break;
        }
        if (this.#closedByRemoval(error)) {
          continue;
        }
        if (error instanceof TooManyBackendsError) {
          // The kept slices hold the excess, so the next attempt lists again rather than watch from here.
          this.#resourceVersion = undefined;
        }
        if (error instanceof KubernetesApiError && error.gone) {
          this.#log.info("resource version too old; listing EndpointSlices again", { resourceVersion: this.#resourceVersion, err: error });
          this.#resourceVersion = undefined;
          if (!listed) {
            // The watch fell behind the API server's event history, even when the slices did not
            // change since an earlier list, so list again at once.
            continue;
          }
          // 410 for the version that this attempt's list has just returned would repeat at once, so it waits for the backoff.
        }
        const delayMs = this.#backoff.nextDelayMs();
        this.#failures.failed("Kubernetes list or watch failed; keeping the last backend set and retrying", {
          err: error,
          resourceVersion: this.#resourceVersion,
          retryInMs: delayMs,
        });
        await sleepUnlessAborted(delayMs, signal);
      }
    }
  }

  /** Lists the slices, replaces the known ones, publishes and keeps the list's resource version. */
  async #list(publish: PublishBackendSet, signal: AbortSignal): Promise<void> {
    const list = await this.#client.list(this.#options.route?.(), signal);
    this.#slices.clear();
    for (const slice of list.slices) {
      this.#slices.set(slice.metadata.name, slice);
    }
    this.#log.debug("listed EndpointSlices", { slices: list.slices.length, resourceVersion: list.resourceVersion });
    this.#publish(publish);
    this.#resourceVersion = list.resourceVersion;
  }

  /**
   * Watches from the kept resource version until the server ends the watch, keeping the
   * resource version of each event, so a watch that breaks resumes after its last event.
   * Returns whether the watch proved itself, with a change event or by staying open for `stableWatchMs`.
   */
  async #watch(publish: PublishBackendSet, signal: AbortSignal): Promise<boolean> {
    const base = this.#options.watchTimeoutSeconds ?? 300;
    const timeoutSeconds = Math.round(base * (1 + Math.random()));
    const watchSignal = AbortSignal.any([signal, AbortSignal.timeout((timeoutSeconds + WATCH_GRACE_SECONDS) * 1000)]);

    const stream = await this.#client.watch(this.#options.route?.(), this.#resourceVersion!, timeoutSeconds, watchSignal);
    const success = new WatchSuccess(this.#options.stableWatchMs ?? STABLE_WATCH_MS, () => this.#succeeded());

    try {
      for await (const event of stream) {
        this.#apply(event, publish);
        if (event.type !== "BOOKMARK") {
          success.changeReceived();
        }
      }
    } finally {
      success.dispose();
    }

    return success.proven;
  }

  /** Applies one watch event to the known slices and keeps its resource version. */
  #apply(event: EndpointSliceEvent, publish: PublishBackendSet): void {
    if (event.type === "BOOKMARK") {
      this.#resourceVersion = event.resourceVersion;

      return;
    }

    const name = event.slice.metadata.name;
    if (event.type === "DELETED") {
      this.#slices.delete(name);
    } else {
      this.#slices.set(name, event.slice);
    }
    this.#resourceVersion = event.slice.metadata.resourceVersion ?? this.#resourceVersion;
    this.#log.debug("EndpointSlice event", { type: event.type, slice: name, resourceVersion: this.#resourceVersion });
    this.#publish(publish);
  }

  #succeeded(): void {
    this.#backoff.reset();
    this.#failures.succeeded("Kubernetes API reachable again");
  }

  #publish(publish: PublishBackendSet): void {
    const backends = this.#backendsFromSlices();
    this.#publisher.offer(new BackendSet(backends), publish, { slices: this.#slices.size });
    // An empty set is not published, so it removes nothing.
    if (backends.length > 0) {
      this.#removedTargets.note(backends);
    }
  }

  /**
   * Returns true, after an info line, when a request broke just after this provider removed
   * targets, so the request most likely went through one of them and tinylb closed it.
   * Such a break is no failure, and the caller retries at once. It applies once per removal,
   * so a second break in a row is a failure as usual.
   */
  #closedByRemoval(error: unknown): boolean {
    const removed = this.#removedTargets.takeRecent();
    if (removed === undefined || this.#options.route === undefined || error instanceof KubernetesApiError || error instanceof TooManyBackendsError) {
      return false;
    }

    // NOTE: the provider cannot see which API server a request went through, so a break for
    // another reason within the window is taken for this case too. It costs one early retry.
    this.#log.info("Kubernetes request broke after its API server left the backend set, which closes its connections; retrying at once", {
      removed: removed.join(","),
      err: error,
    });

    return true;
  }

  /** Turns the known slices into backends, in slice name order; the first slice wins a repeated address. */
  #backendsFromSlices(): Backend[] {
    const byId = new Map<string, Backend>();
    const names = [...this.#slices.keys()].sort();
    for (const name of names) {
      const slice = this.#slices.get(name)!;
      const port = slice.ports?.find((candidate) => candidate.name === this.#portName)?.port;
      if (port === undefined || port === null) {
        continue;
      }
      for (const endpoint of slice.endpoints ?? []) {
        // discovery.k8s.io/v1 EndpointConditions: an unset ready is unknown, which consumers should treat as ready.
        if (endpoint.conditions?.ready === false) {
          continue;
        }
        for (const address of endpoint.addresses) {
          this.#addBackend(byId, address, port, name);
        }
      }
    }

    return [...byId.values()];
  }

  #addBackend(byId: Map<string, Backend>, address: string, port: number, sliceName: string): void {
    const id = `kubernetes:${address}`;
    if (byId.has(id)) {
      return;
    }

    const host = address.includes(":") ? `[${address}]` : address;
    try {
      byId.set(id, createBackend(id, `${host}:${port}`));
    } catch (error) {
      if (!(error instanceof BackendError)) {
        throw error;
      }
      if (!this.#invalidAddresses.has(address)) {
        this.#invalidAddresses.add(address);
        this.#log.warn("skipping an EndpointSlice address that is not a valid backend", { slice: sliceName, address, err: error });
      }
    }
  }
}
