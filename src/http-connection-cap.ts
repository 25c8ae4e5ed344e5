import type { Settings } from "./settings.ts";

/** The connection cap of the admin API and of the metrics server at ordinary descriptor limits (1024 and up). */
export const MAX_HTTP_CONNECTIONS = 64;

/** The smallest cap, so that a tinylb command and a scraper still fit under the lowest limits a start accepts. */
const MIN_HTTP_CONNECTIONS = 4;

/**
 * Computes the connection cap of the admin API and of the metrics server for a descriptor
 * `limit`: 1/16 of it, at least 4 and at most 64, so that a flood of both servers takes at most
 * about an eighth of the limit. Before the caps scaled, two caps of 64 under `ulimit -n 100`
 * took every descriptor, and accept(2) on both server sockets failed with EMFILE in a busy
 * loop. An unknown or unlimited `limit` (see `readDescriptorLimit`) gets the full cap.
 */
export function httpConnectionCap(limit: number | undefined): number {
  if (limit === undefined) {
    return MAX_HTTP_CONNECTIONS;
  }

  return Math.min(MAX_HTTP_CONNECTIONS, Math.max(MIN_HTTP_CONNECTIONS, Math.floor(limit / 16)));
}

/** Counts the HTTP servers that `settings` starts: the admin API and the metrics server, each unless "off". */
export function httpServerCount(settings: Settings): number {
  return (settings.providers.admin === "off" ? 0 : 1) + (settings.providers.metrics === "off" ? 0 : 1);
}
