import type { Server } from "./server.ts";
import type { ServiceNotifier } from "./service-notifier.ts";

/** Milliseconds during which status changes are gathered into one STATUS= notification. */
const STATUS_BATCH_MS = 1000;

/**
 * Returns the status line that the service manager shows (`systemctl status`): the backends
 * that are up, healthy and enabled, out of the set, and the open connections of every thread.
 */
export function describeServiceStatus(server: Server): string {
  const states = server.health.states();
  const up = states.filter((state) => state.healthy && !server.disabled.has(state.id)).length;
  const open = server.activeCountInAllThreads;

  return `${up} of ${server.set.size} backends up, ${open} connection${open === 1 ? "" : "s"} open`;
}

/**
 * Sends a new status line after backend set changes, health flips and disabled backends, at most
 * once per second. Returns a function that stops the updates.
 */
export function watchServiceStatus(server: Server, notifier: ServiceNotifier): () => void {
  if (!notifier.enabled) {
    return () => {};
  }

  let timer: Timer | undefined;
  let stopped = false;
  const schedule = (): void => {
    if (timer !== undefined || stopped) {
      return;
    }
    timer = setTimeout(() => {
      timer = undefined;
      notifier.status(describeServiceStatus(server));
    }, STATUS_BATCH_MS);
    timer.unref();
  };
  server.onSetApplied(schedule);
  server.health.onFlip(schedule);
  server.disabled.onChange(schedule);

  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
