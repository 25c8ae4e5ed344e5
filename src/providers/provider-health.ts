import { errorText } from "../logger.ts";

/**
 * The fetch results of a provider that reads its set from elsewhere (DNS, Kubernetes, etcd),
 * for `tinylb status` and /metrics. A failing provider keeps its last set, which may be out of
 * date, so status and /metrics show the failure.
 */
export class ProviderHealth {
  /** Failed fetches since the start. */
  failures = 0;
  /** Error of the last fetch, or undefined when it succeeded. */
  lastError: string | undefined;
  /** Clock time (milliseconds since the epoch) of the first failure of the current streak. */
  failingSinceMs: number | undefined;
  /**
   * Clock time (milliseconds since the epoch) since which the source has listed no usable
   * backend, so the provider keeps its last set. It is undefined while the source lists some.
   */
  staleSinceMs: number | undefined;
  /** Reason the provider keeps its last set, such as `no valid backend under the etcd prefix`. */
  staleReason: string | undefined;

  /** True while the last fetch failed. */
  get failing(): boolean {
    return this.lastError !== undefined;
  }

  /** Records a failed fetch. */
  failed(error: unknown, now = Date.now()): void {
    this.failures++;
    this.lastError = errorText(error);
    this.failingSinceMs ??= now;
  }

  /** True while the provider keeps its last set because the source lists no usable backend. */
  get stale(): boolean {
    return this.staleReason !== undefined;
  }

  /** Records a fetch that listed no usable backend, so the last set is kept. */
  keptLastSet(reason: string, now = Date.now()): void {
    this.staleReason = reason;
    this.staleSinceMs ??= now;
  }

  /** Records a fetch that listed usable backends again. */
  listedBackends(): void {
    this.staleReason = undefined;
    this.staleSinceMs = undefined;
  }

  /** Records a fetch that succeeded, which ends a failure streak. */
  succeeded(): void {
    this.lastError = undefined;
    this.failingSinceMs = undefined;
  }
}
