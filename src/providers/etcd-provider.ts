import { type Backend, BackendError, createBackend } from "../backend.ts";
import { BackendSet } from "../backend-set.ts";
import { type Logger, silentLogger } from "../logger.ts";
import { EtcdHistoryChangedError } from "./etcd-errors.ts";
import { EtcdCompactedError, EtcdGateway, type EtcdTls, type EtcdWatchResponse } from "./etcd-gateway.ts";
import { FailureStreak } from "./failure-streak.ts";
import { ProviderHealth } from "./provider-health.ts";
import type { Provider, PublishBackendSet } from "./provider.ts";
import { type BackoffOptions, ReconnectBackoff, sleepUnlessAborted } from "./reconnect-backoff.ts";
import { SetPublisher, TooManyBackendsError } from "./set-publisher.ts";
import { STABLE_WATCH_MS, WatchSuccess } from "./watch-success.ts";

/** Settings of an etcd provider. */
export interface EtcdProviderOptions {
  /** Client URLs of etcd members, such as `http://127.0.0.1:2379`; tried in turn after a failure. */
  endpoints: string[];
  /** Key prefix to follow, such as `/tinylb/backends/`; the rest of each key is the backend id. */
  prefix: string;
  /** For `https://` endpoints. */
  tls?: EtcdTls;
  backoff?: BackoffOptions;
  /**
   * Milliseconds a watch may stay silent before it is dropped and opened again on the next
   * endpoint. It must exceed etcd's progress notification interval
   * (`--experimental-watch-progress-notify-interval`, 10 minutes by default in etcd 3.4),
   * because a quiet prefix sends nothing else.
   * @default 660000
   */
  watchIdleTimeoutMs?: number;
  /**
   * Milliseconds each range page may take to be read in full, and a watch to send its first
   * response. A request that times out is a failure, and the next one goes to the next endpoint.
   * @default REQUEST_TIMEOUT_MS (10 s)
   */
  requestTimeoutMs?: number;
  /** Limit of one whole range, every page, and of one watch response, in bytes. @default MAX_RESPONSE_BYTES (16 MiB) */
  maxResponseBytes?: number;
  /** Largest set published; a larger one fails the fetch. @default MAX_PROVIDER_BACKENDS (10,000) */
  maxBackends?: number;
  /**
   * Milliseconds a watch must stay open, when it delivers no event, before it ends a failure
   * streak and resets the back-off. A range alone never does, and neither does a progress notification.
   * @default STABLE_WATCH_MS (10 s)
   */
  stableWatchMs?: number;
  /** @default a logger that writes nothing */
  logger?: Logger;
}

/** Default of `watchIdleTimeoutMs`: one minute more than etcd's default progress notification interval. */
const DEFAULT_WATCH_IDLE_TIMEOUT_MS = 11 * 60_000;

/**
 * A provider that follows a key prefix in etcd: each key `PREFIX + ID` is a backend whose
 * target is the key's value, such as `/tinylb/backends/api-1` = `10.0.0.11:6443`.
 *
 * It reads the prefix with a range request, then watches from the next revision. After a
 * dropped or silent watch it moves to the next endpoint and watches again from the revision
 * after the last one it applied. When etcd has compacted that revision, it reads the prefix
 * again. It never publishes an empty set: an error, or a prefix with no valid entry, keeps
 * the last set.
 * Keys whose rest is not a valid id, or whose value is not a valid target, are skipped
 * and logged once. A key whose value turns invalid keeps its last valid target until the
 * value is valid again or the key is deleted, so a typo does not close its connections.
 */
export class EtcdProvider implements Provider {
  readonly name: string;
  readonly #gateway: EtcdGateway;
  readonly #log: Logger;
  readonly #failures: FailureStreak;
  /** The last list or watch's result, for status and /metrics. */
  readonly health = new ProviderHealth();
  readonly #backoff: ReconnectBackoff;
  /** Values by full key, as of `#revision`. */
  readonly #entries = new Map<string, string>();
  /** The invalid value last logged of each key, so that a value is logged once while it stays, and again after the key was valid or deleted. */
  readonly #invalidEntries = new Map<string, string>();
  /** The last valid backend of each key, used while the key's value is invalid. */
  readonly #lastValid = new Map<string, Backend>();
  #revision: number | undefined;
  /** Cluster id of the last range, or empty when etcd sent none. */
  #clusterId = "";
  #abort = new AbortController();
  #loop: Promise<void> | undefined;
  readonly #publisher: SetPublisher;

  /** @throws {Error} when no endpoint is given or the prefix is empty. */
  constructor(private readonly options: EtcdProviderOptions) {
    if (options.prefix === "") {
      throw new Error("invalid etcd provider: the key prefix must not be empty");
    }
    this.name = `etcd:${options.prefix}`;
    this.#gateway = new EtcdGateway(options.endpoints, options.prefix, options.tls, options.maxResponseBytes, options.requestTimeoutMs);
    this.#log = (options.logger ?? silentLogger).with({ component: "etcd-provider", provider: this.name });
    this.#publisher = new SetPublisher(this.#log, "no valid backend under the etcd prefix", options.maxBackends, this.health);
    this.#failures = new FailureStreak(this.#log, this.health);
    this.#backoff = new ReconnectBackoff(options.backoff);
  }

  /** The revision the published set reflects, once the prefix has been read. */
  get revision(): number | undefined {
    return this.#revision;
  }

  /** Starts reading and watching in the background; returns at once. */
  start(publish: PublishBackendSet): void {
    if (this.#loop !== undefined) {
      throw new Error(`invariant violated: provider ${this.name} started twice`);
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
    this.#log.info("following etcd prefix", { prefix: this.options.prefix, endpoints: this.options.endpoints.join(",") });
    while (!signal.aborted) {
      let ranged = false;
      try {
        if (this.#revision === undefined) {
          await this.#range(publish, signal);
          ranged = true;
        }
        await this.#watch(publish, signal);
        if (!signal.aborted) {
          throw new Error("the watch stream ended");
        }
      } catch (error) {
        if (signal.aborted) {
          break;
        }
        if (error instanceof TooManyBackendsError) {
          // The kept entries hold the excess, so the next attempt reads the prefix again rather than watch from here.
          this.#revision = undefined;
        }
        if (error instanceof EtcdCompactedError) {
          this.#log.info("watch revision compacted; reading the prefix again", { revision: this.#revision, err: error });
          this.#revision = undefined;
          if (!ranged) {
            // The watch fell behind etcd's history, even when the prefix did not change since
            // an earlier range, so read the prefix again at once.
            continue;
          }
          // Compaction of the revision that this attempt's range has just returned would repeat at once, so it waits for the back-off.
        }
        if (error instanceof EtcdHistoryChangedError) {
          this.#log.warn("etcd history changed, as after etcd was replaced or restored; reading the whole prefix again", {
            endpoint: this.#gateway.endpoint,
            revision: this.#revision,
            err: error,
          });
          this.#revision = undefined;
          if (!ranged) {
            continue;
          }
          // A watch that contradicts the range just read, such as through a proxy in front of two clusters, would repeat at once.
        }
        const delayMs = this.#backoff.nextDelayMs();
        this.#failures.failed("etcd range or watch failed; keeping the last backend set and retrying", {
          endpoint: this.#gateway.endpoint,
          revision: this.#revision,
          err: error,
          retryInMs: delayMs,
        });
        this.#gateway.rotate();
        await sleepUnlessAborted(delayMs, signal);
      }
    }
  }

  async #range(publish: PublishBackendSet, signal: AbortSignal): Promise<void> {
    const result = await this.#gateway.range(signal);
    this.#entries.clear();
    for (const kv of result.kvs) {
      this.#entries.set(kv.key, kv.value);
    }
    this.#log.debug("read etcd prefix", { keys: result.kvs.length, revision: result.revision });
    this.#publish(publish, result.revision);
    this.#revision = result.revision;
    this.#clusterId = result.clusterId;
  }

  async #watch(publish: PublishBackendSet, signal: AbortSignal): Promise<void> {
    const idleMs = this.options.watchIdleTimeoutMs ?? DEFAULT_WATCH_IDLE_TIMEOUT_MS;
    const idle = new AbortController();
    const endpoint = this.#gateway.endpoint;
    const startIdleTimer = (): Timer => setTimeout(() => idle.abort(new Error(`etcd /v3/watch at ${endpoint} sent nothing for ${idleMs} ms`)), idleMs);
    let timer = startIdleTimer();
    let success: WatchSuccess | undefined;
    try {
      for await (const response of this.#gateway.watch(this.#revision! + 1, AbortSignal.any([signal, idle.signal]))) {
        clearTimeout(timer);
        timer = startIdleTimer();
        // The created response opens the watch. Only a response with events proves it, not a progress notification.
        success ??= new WatchSuccess(this.options.stableWatchMs ?? STABLE_WATCH_MS, () => this.#succeeded());
        this.#apply(response, publish);
        if (response.events.length > 0) {
          success.changeReceived();
        }
      }
    } catch (error) {
      // A silent watch is aborted by its own timer; report that reason, not a bare AbortError.
      throw idle.signal.aborted && !signal.aborted ? idle.signal.reason : error;
    } finally {
      clearTimeout(timer);
      success?.dispose();
    }
  }

  #apply(response: EtcdWatchResponse, publish: PublishBackendSet): void {
    this.#checkHistory(response);
    if (response.created) {
      // The created response's header is the store's revision, not a promise that the
      // events up to it were delivered, so it does not move the resume revision.
      return;
    }
    if (response.events.length === 0) {
      // A progress notification: every event up to this revision has been delivered.
      this.#revision = Math.max(this.#revision!, response.revision);

      return;
    }

    for (const event of response.events) {
      if (event.type === "DELETE") {
        this.#entries.delete(event.kv.key);
      } else {
        this.#entries.set(event.kv.key, event.kv.value);
      }
      this.#revision = Math.max(this.#revision!, event.kv.modRevision);
    }
    this.#log.debug("etcd watch events", { events: response.events.length, revision: this.#revision });
    this.#publish(publish);
  }

  /**
   * Checks that `response` continues the history the kept set came from.
   *
   * @throws {EtcdHistoryChangedError} when the cluster id changed or the store revision is
   *   below the revision the set reflects.
   */
  #checkHistory(response: EtcdWatchResponse): void {
    // NOTE: a member that lags behind the one the set came from also reports a lower revision.
    // That costs one needless range, with a warning that names etcd being replaced.
    if (response.revision > 0 && response.revision < this.#revision!) {
      throw new EtcdHistoryChangedError(
        `the store revision of ${this.#gateway.endpoint} is ${response.revision}, below revision ${this.#revision} that the backend set reflects`,
      );
    }
    if (response.clusterId !== "" && this.#clusterId !== "" && response.clusterId !== this.#clusterId) {
      throw new EtcdHistoryChangedError(`the cluster id of ${this.#gateway.endpoint} changed from ${this.#clusterId} to ${response.clusterId}`);
    }
  }

  #succeeded(): void {
    this.#backoff.reset();
    this.#failures.succeeded("etcd reachable again", { endpoint: this.#gateway.endpoint });
  }

  #publish(publish: PublishBackendSet, revision = this.#revision): void {
    this.#publisher.offer(new BackendSet(this.#backends()), publish, { keys: this.#entries.size, revision });
  }

  #backends(): Backend[] {
    // A deleted key takes its last valid target, and its logged invalid value, with it.
    for (const byKey of [this.#lastValid, this.#invalidEntries]) {
      for (const key of byKey.keys()) {
        if (!this.#entries.has(key)) {
          byKey.delete(key);
        }
      }
    }

    const backends: Backend[] = [];
    for (const [key, value] of this.#entries) {
      const backend = this.#backendOf(key, value);
      if (backend !== undefined) {
        backends.push(backend);
      }
    }

    return backends;
  }

  /**
   * Returns a `fix` field for a key whose id starts with `/` under a prefix that does not end
   * with one, such as `/tinylb/backends` for the key `/tinylb/backends/api-1`.
   */
  #prefixFix(key: string): { fix?: string } {
    const prefix = this.options.prefix;
    if (prefix.endsWith("/") || key.charAt(prefix.length) !== "/") {
      return {};
    }

    return { fix: `end the etcd prefix with / (${prefix}/), so that each key's id is the part after it` };
  }

  /** Returns the backend of one key, or for an invalid value the key's last valid backend, if any. */
  #backendOf(key: string, value: string): Backend | undefined {
    try {
      const backend = createBackend(key.slice(this.options.prefix.length), value.trim());
      this.#lastValid.set(key, backend);
      if (this.#invalidEntries.delete(key)) {
        this.#log.info("etcd key has a valid target again", { key, target: backend.target });
      }

      return backend;
    } catch (error) {
      if (!(error instanceof BackendError)) {
        throw error;
      }
      const lastValid = this.#lastValid.get(key);
      if (this.#invalidEntries.get(key) !== value) {
        this.#invalidEntries.set(key, value);
        if (lastValid === undefined) {
          this.#log.warn("skipping an etcd key that is not a valid backend", { key, err: error, ...this.#prefixFix(key) });
        } else {
          this.#log.warn("etcd key has an invalid target; keeping its last valid target", { key, target: lastValid.target, err: error });
        }
      }

      return lastValid;
    }
  }
}
