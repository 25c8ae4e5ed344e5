/** Outcome of `runConnectLoop`. */
export interface ConnectLoopResult {
  attempts: number;
  /** Connects that failed with ECONNREFUSED. */
  refused: number;
  /** Clients that received the backend's greeting. */
  served: number;
  /** Clients that failed otherwise: another error, or no greeting within the timeout. */
  failed: number;
  /** Maximum time from the start of a connect to the greeting of a served client, in milliseconds. */
  maxWaitMs: number;
}

/**
 * Starts a connect to 127.0.0.1:`port` every `intervalMs` for `durationMs` (at most
 * `durationMs / intervalMs` attempts), each waiting up to `timeoutMs` for the greeting of a
 * `TestBackend.echo` backend, and resolves once every attempt has ended.
 */
export async function runConnectLoop(port: number, durationMs: number, intervalMs: number, timeoutMs = 15_000): Promise<ConnectLoopResult> {
  const result: ConnectLoopResult = { attempts: 0, refused: 0, served: 0, failed: 0, maxWaitMs: 0 };
  const attempts: Promise<void>[] = [];
  const maxAttempts = Math.floor(durationMs / intervalMs);
  const end = performance.now() + durationMs;
  while (performance.now() < end && attempts.length < maxAttempts) {
    attempts.push(attemptOnce(port, timeoutMs, result));
    await Bun.sleep(intervalMs);
  }
  await Promise.all(attempts);
  result.attempts = attempts.length;

  return result;
}

/** Connects once and records the outcome in `result`. */
async function attemptOnce(port: number, timeoutMs: number, result: ConnectLoopResult): Promise<void> {
  const started = performance.now();
  const { promise: greeted, resolve } = Promise.withResolvers<boolean>();
  const timer = setTimeout(() => resolve(false), timeoutMs);
  try {
    const socket = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        data: (_socket, chunk) => resolve(chunk.toString().includes("\n")),
        close: () => resolve(false),
        error: () => resolve(false),
      },
    });
    const served = await greeted;
    socket.end();
    if (served) {
      result.served++;
      result.maxWaitMs = Math.max(result.maxWaitMs, performance.now() - started);
    } else {
      result.failed++;
    }
  } catch (error) {
    if ((error as { code?: unknown }).code === "ECONNREFUSED") {
      result.refused++;
    } else {
      result.failed++;
    }
  } finally {
    clearTimeout(timer);
  }
}
