/**
 * Default deadline, in milliseconds, of a provider request that should respond promptly: one
 * range or list page, read in full, or the start of a watch until its first response. It is
 * twice the 5 s default of `etcdctl --command-timeout` (etcd 3.4), so a loaded member has
 * time to respond. A member that accepts connections and never responds then delays the move
 * to the next endpoint by 10 s.
 */
export const REQUEST_TIMEOUT_MS = 10_000;

/** A provider request that received no response before its deadline. */
export class RequestTimeoutError extends Error {
  override name = "RequestTimeoutError";
}

/**
 * A deadline for one request. `signal` aborts when `stopSignal` does or when the deadline
 * passes, whichever comes first. `clear` ends the deadline once the request has its response,
 * such as a watch after its first response, so the request then runs on under `stopSignal` alone.
 */
export class RequestDeadline {
  readonly signal: AbortSignal;
  readonly #expired = new AbortController();
  readonly #timer: Timer;

  /**
   * @param description names the request in the error, such as `etcd /v3/kv/range at http://10.0.0.1:2379`.
   * @param hint what an operator should check when the request times out.
   */
  constructor(
    private readonly stopSignal: AbortSignal,
    timeoutMs: number,
    description: string,
    hint: string,
  ) {
    const error = new RequestTimeoutError(`${description} timed out after ${timeoutMs} ms without a response; ${hint}`);
    this.#timer = setTimeout(() => this.#expired.abort(error), timeoutMs);
    this.signal = AbortSignal.any([stopSignal, this.#expired.signal]);
  }

  /** Ends the deadline; the request is no longer aborted by it. */
  clear(): void {
    clearTimeout(this.#timer);
  }

  /**
   * Returns the error to throw in place of `error`, which the request raised. That is the
   * timeout error when the deadline aborted the request, because fetch reports it as a bare
   * abort, and `error` itself otherwise.
   */
  errorFor(error: unknown): unknown {
    if (this.#expired.signal.aborted && !this.stopSignal.aborted) {
      return this.#expired.signal.reason;
    }

    return error;
  }
}

/**
 * Runs `request` under a deadline of `timeoutMs` and returns its result.
 *
 * @throws {RequestTimeoutError} when the deadline passes first; otherwise what `request` throws.
 */
export async function withDeadline<T>(
  stopSignal: AbortSignal,
  timeoutMs: number,
  description: string,
  hint: string,
  request: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const deadline = new RequestDeadline(stopSignal, timeoutMs, description, hint);
  try {
    return await request(deadline.signal);
  } catch (error) {
    throw deadline.errorFor(error);
  } finally {
    deadline.clear();
  }
}
