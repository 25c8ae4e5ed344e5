import { readdirSync, readFileSync } from "node:fs";
import { httpConnectionCap } from "./http-connection-cap.ts";
import type { Logger } from "./logger.ts";

/**
 * Reads the soft limit on open file descriptors (RLIMIT_NOFILE) from `/proc/self/limits`.
 * Returns undefined where that file does not exist (not Linux) or the limit is "unlimited".
 */
export function readDescriptorLimit(limitsPath = "/proc/self/limits"): number | undefined {
  let text: string;
  try {
    text = readFileSync(limitsPath, "utf8");
  } catch {
    return undefined;
  }
  const match = /^Max open files\s+(\d+|unlimited)\s/m.exec(text);
  if (match === null || match[1] === "unlimited") {
    return undefined;
  }

  return Number(match[1]);
}

/** Counts this process's open file descriptors from `/proc/self/fd`; undefined where that folder does not exist. */
export function countOpenDescriptors(): number | undefined {
  try {
    // The directory handle readdir opens is listed too, so one entry is not ours to count.
    return readdirSync("/proc/self/fd").length - 1;
  } catch {
    return undefined;
  }
}

/**
 * Descriptors a process keeps free for work besides relaying: dials, probes, admin
 * requests, config reads. Scales with the limit: 1/32 of it, at least 8 and at most 128.
 * The connections that the admin API and the metrics server keep open (`httpConnectionCap`,
 * up to 1/16 of the limit each) come on top (see `DescriptorBudget`).
 */
export function descriptorReserve(limit: number): number {
  return Math.min(128, Math.max(8, Math.floor(limit / 32)));
}

/** Descriptors one relayed connection uses: the client socket and the backend socket. */
export const DESCRIPTORS_PER_CONNECTION = 2;

/**
 * The file-descriptor headroom of the process, used to stop accepting before accept(2)
 * fails with EMFILE.
 *
 * With no descriptor free, Bun 1.4.4's listener keeps retrying the failing accept while a
 * client waits in the backlog, and uses a whole core (measured on Linux 6.18 by holding
 * connections under `ulimit -n 64`). The server therefore stops its listeners
 * while fewer than `reserve` descriptors are free, and binds them again once twice that
 * many are free. The caps of the admin API and the metrics server (`controlCaps`) are held
 * back on top of the reserve, so clients cannot take what a flood of those servers may hold.
 * NOTE: the exact count includes the control connections open at the time, so while those
 * servers hold connections, clients get that many fewer descriptors than the caps allow.
 *
 * The cheap estimate (descriptors at start plus two per connection, of every relay thread
 * with `--workers`) decides when to count `/proc/self/fd` exactly: on every accept near the
 * limit, and at most once a second otherwise. Probes, admin requests and connects given up at
 * their timeout hold descriptors the estimate does not see. The count is linear in open
 * descriptors.
 */
export class DescriptorBudget {
  readonly limit: number;
  readonly reserve: number;
  /** Descriptors held back for the connections of the admin API and the metrics server. */
  readonly controlCaps: number;
  readonly #baseline: number;
  readonly #count: () => number | undefined;
  readonly #now: () => number;
  #countedAt = -Infinity;
  #lastOpen = 0;

  /**
   * @param limit the descriptor limit (RLIMIT_NOFILE).
   * @param baseline descriptors open before any client was accepted.
   * @param count returns the exact number of open descriptors.
   * @param now returns the time in milliseconds.
   * @param controlServers how many of the admin API and the metrics server run, whose connection caps are held back.
   */
  constructor(limit: number, baseline: number, count: () => number | undefined = countOpenDescriptors, now: () => number = () => performance.now(), controlServers = 0) {
    this.limit = limit;
    this.reserve = descriptorReserve(limit);
    this.controlCaps = controlServers * httpConnectionCap(limit);
    this.#baseline = baseline;
    this.#lastOpen = baseline;
    this.#count = count;
    this.#now = now;
  }

  /**
   * Builds the budget of this process, or undefined where the limit or the open count cannot be read.
   *
   * @param controlServers how many of the admin API and the metrics server run in this process.
   */
  static ofProcess(controlServers = 0): DescriptorBudget | undefined {
    const limit = readDescriptorLimit();
    const baseline = countOpenDescriptors();
    if (limit === undefined || baseline === undefined) {
      return undefined;
    }

    return new DescriptorBudget(limit, baseline, countOpenDescriptors, () => performance.now(), controlServers);
  }

  /**
   * Returns true when fewer than `reserve` descriptors are free besides `controlCaps`, given the
   * connections open or dialing. `now` is the time on the budget's clock, for a caller that has
   * just read it.
   */
  exhausted(active: number, now = this.#now()): boolean {
    const estimate = this.#baseline + DESCRIPTORS_PER_CONNECTION * active;
    const usable = this.limit - this.controlCaps;
    const near = Math.max(estimate, this.#lastOpen) >= usable - 4 * this.reserve;
    if (!near && now - this.#countedAt < 1000) {
      return false;
    }

    this.#countedAt = now;
    this.#lastOpen = this.#count() ?? estimate;

    return usable - this.#lastOpen < this.reserve;
  }

  /** Returns true when at least twice `reserve` descriptors are free besides `controlCaps`, so accepting may start again. */
  recovered(): boolean {
    const open = this.#count();

    return open !== undefined && this.limit - this.controlCaps - open >= 2 * this.reserve;
  }

  /** Computes how many connections the limit leaves room for, after the baseline, the reserve and `otherDescriptors` used elsewhere. */
  maxConnections(otherDescriptors = 0): number {
    return Math.max(0, Math.floor((this.limit - this.#baseline - this.reserve - otherDescriptors) / DESCRIPTORS_PER_CONNECTION));
  }
}

/**
 * Warns at start-up when the descriptor limit cannot hold `maxConnections` connections
 * (two descriptors each, plus the descriptors open now, the reserve, and the connection caps
 * of the `httpServers` that run: the admin API and the metrics server). Without a cap it logs,
 * at info level, how many connections the limit leaves room for.
 */
export function checkDescriptorLimit(maxConnections: number, httpServers: number, log: Logger, budget = DescriptorBudget.ofProcess()): void {
  if (budget === undefined) {
    log.debug("descriptor limit unknown on this system; not checked against the connection cap");

    return;
  }

  // A flood of the admin API and the metrics server can hold their caps at any time.
  const httpCaps = httpServers * httpConnectionCap(budget.limit);
  const room = budget.maxConnections(httpCaps);
  if (maxConnections === 0) {
    log.info("no global connection cap set; the descriptor limit leaves room for about this many connections", { descriptorLimit: budget.limit, connections: room, adminAndMetricsCaps: httpCaps });
  } else if (room < maxConnections) {
    const needed = budget.limit + DESCRIPTORS_PER_CONNECTION * (maxConnections - room);
    log.warn("the descriptor limit is too low for the connection cap; raise it (ulimit -n, LimitNOFILE=) or lower --max-connections", {
      descriptorLimit: budget.limit,
      maxConnections,
      reachable: room,
      neededLimit: needed,
      adminAndMetricsCaps: httpCaps,
    });
  }
}
