import type { Logger } from "./logger.ts";

/**
 * Logs each error that escapes every handler, so that it does not end the thread and close
 * every connection the thread relays. The main thread and each relay worker call it once.
 */
export function logUncaughtErrors(log: () => Logger | undefined): void {
  process.on("uncaughtException", (error) => report(log(), "invariant violated: uncaught exception", error));
  process.on("unhandledRejection", (error) => report(log(), "invariant violated: unhandled promise rejection", error));
}

function report(log: Logger | undefined, message: string, error: unknown): void {
  if (log === undefined) {
    console.error(`${message}: ${String(error)}`);
  } else {
    log.error(message, { err: error });
  }
}
