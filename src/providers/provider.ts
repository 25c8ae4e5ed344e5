import type { BackendSet } from "../backend-set.ts";
import type { ProviderHealth } from "./provider-health.ts";

/** Receives each backend set a provider publishes; the latest one replaces the provider's previous set. */
export type PublishBackendSet = (set: BackendSet) => void;

/**
 * A source of backend sets: flags, a watched file, the admin API, DNS, Kubernetes, etcd.
 *
 * A provider publishes its whole current set each time it changes; the running set is the
 * union of every provider's latest set, keyed by backend id. A provider that fails keeps
 * its last published set (it publishes nothing) and logs the failure itself, once per
 * failure streak. It never publishes an empty set because of an error.
 */
export interface Provider {
  /** Short name used in logs, status and metrics, such as `static`, `file` or `dns:api.internal`. */
  readonly name: string;
  /** Fetch results, for a provider that reads its set from elsewhere (DNS, Kubernetes, etcd). */
  readonly health?: ProviderHealth;
  /**
   * Starts the provider. It may publish synchronously before returning (the static and
   * state-file providers do) and later whenever its set changes.
   */
  start(publish: PublishBackendSet): void | Promise<void>;
  /** Stops watching, polling or serving; no publish happens after it resolves. */
  stop(): void | Promise<void>;
}
