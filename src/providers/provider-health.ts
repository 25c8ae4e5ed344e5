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

  /** Records a fetch that succeeded, which ends a failure streak. */
  succeeded(): void {
    this.lastError = undefined;
    this.failingSinceMs = undefined;
  }
}
