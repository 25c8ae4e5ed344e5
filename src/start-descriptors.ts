import type { CliOptions } from "./cli.ts";
import { ConfigError } from "./config.ts";
import { countOpenDescriptors, DESCRIPTORS_PER_CONNECTION, descriptorReserve, readDescriptorLimit } from "./descriptor-budget.ts";
import { httpConnectionCap, httpServerCount } from "./http-connection-cap.ts";
import { resolveProbeSettings } from "./probes/probe.ts";
import type { Settings } from "./settings.ts";
import { joinWords } from "./word-lists.ts";
import { relayThreadCount } from "./worker-pool.ts";

/**
 * Descriptors that each relay worker thread opens besides its listeners: its event loop's
 * epoll and eventfd, and a copy of stdout. Measured with Bun 1.4.4 on Linux 6.18 in
 * /proc/PID/fd of a running balancer: each worker added 3 and one socket per TCP listener.
 */
export const DESCRIPTORS_PER_WORKER = 3;

/**
 * Descriptors of an admin API on a Unix socket: the socket, and the epoll and eventfd of an
 * event loop that Bun 1.4.4 starts with it (measured as above). On TCP it takes the socket alone.
 */
const UNIX_ADMIN_DESCRIPTORS = 3;

/**
 * Estimates the descriptors a start of `settings` keeps open once it runs, given the `open`
 * descriptors of the process before it binds anything or logs. It adds a copy of stderr, a
 * socket per listener, a lock per TCP listener (see `ListenLocks`), the relay
 * workers' descriptors, the admin API's and the metrics server's, and the config watch's
 * inotify descriptor. Measured against
 * /proc/PID/fd, the estimate matched the descriptors open after the start for 1 to 8 workers,
 * with and without the admin API, the metrics server and the watch.
 */
export function startDescriptors(settings: Settings, watchesConfig: boolean, open: number): number {
  // Each TCP listener has a lock too, on the port it bound when it was given port 0.
  const tcpListeners = settings.listen.filter((address) => address.kind === "tcp").length;
  const workers = relayThreadCount(settings) - 1;
  let services = (settings.providers.metrics === "off" ? 0 : 1) + (watchesConfig ? 1 : 0);
  const admin = settings.providers.admin;
  if (admin !== "off") {
    services += admin.kind === "unix" ? UNIX_ADMIN_DESCRIPTORS : 1;
  }

  // Bun opens a copy of stderr with the first log line, which comes after this count.
  const stderrCopy = 1;

  return open + stderrCopy + settings.listen.length + tcpListeners + workers * (DESCRIPTORS_PER_WORKER + tcpListeners) + services;
}

/**
 * Counts the descriptors that the probes of `settings` can hold at once: a socket per backend of
 * the flags and the config file that has a probe. A backend's probes never overlap (see
 * `ProbeLoop`), but those of different backends may all be in flight at once, as right after
 * start, when every backend is probed at the same moment.
 * NOTE: backends that the state file, the admin API, DNS, Kubernetes or etcd add are not known
 * before start, so their probes are not counted.
 */
export function probeDescriptors(settings: Settings): number {
  const check = settings.health.check;

  return settings.backends.backends.filter((backend) => resolveProbeSettings(check.probe, check.probeOverrides?.get(backend.id)) !== undefined).length;
}

/**
 * Returns the smallest descriptor limit under which a start serves one connection. It counts
 * the `descriptorsAtStart`, two for the connection, the reserve that the descriptor guard keeps
 * free (see `DescriptorBudget`), and the connection caps of the `httpServers` that run (the
 * admin API and the metrics server, see `httpConnectionCap`). The reserve and the caps grow
 * with the limit.
 * With the caps counted, a flood of both servers cannot take the last descriptors, which would
 * make accept(2) on their sockets fail with EMFILE in a busy loop.
 */
export function requiredDescriptorLimit(descriptorsAtStart: number, httpServers = 0): number {
  const used = descriptorsAtStart + DESCRIPTORS_PER_CONNECTION;
  let limit = used;
  while (limit - descriptorReserve(limit) - httpServers * httpConnectionCap(limit) < used) {
    limit++;
  }

  return limit;
}

/**
 * Descriptors of a started balancer that a reload cannot change: its listeners, threads, admin
 * API, metrics server and config watch (see `startDescriptors`), and how many of the admin API
 * and the metrics server run, whose connection caps are held back.
 */
export interface StartDescriptorCount {
  descriptors: number;
  httpServers: number;
}

/**
 * Rejects a start whose descriptor limit (RLIMIT_NOFILE) cannot hold its threads and one
 * connection, before anything is bound or any worker starts. Without the check, relay workers
 * fail with "Failed to listen" or Bun's "ProcessFdQuotaExceeded", and a balancer without workers
 * starts but closes every client. It reads from `cli` whether the config file is watched and
 * whether `--workers` or the file's `workers` set the threads.
 *
 * Returns the start's descriptors, for `reloadDescriptorProblem`, or undefined where the open
 * descriptors cannot be counted.
 *
 * @throws {ConfigError} with the message of `descriptorRoomProblem`.
 */
export function checkDescriptorRoom(settings: Settings, cli: CliOptions): StartDescriptorCount | undefined {
  const watchesConfig = cli.configPath !== undefined && settings.providers.watchConfig;
  const workersFile = cli.workers === undefined ? cli.configPath : undefined;
  const open = countOpenDescriptors();
  const problem = descriptorRoomProblem(settings, watchesConfig, readDescriptorLimit(), open, workersFile);
  if (problem !== undefined) {
    throw new ConfigError(problem);
  }

  return open === undefined ? undefined : { descriptors: startDescriptors(settings, watchesConfig, open), httpServers: httpServerCount(settings) };
}

/**
 * Returns the error for a reload whose probes would not fit under the descriptor `limit` beside
 * what the start keeps open (`atStart`) and one connection, or undefined. A start rejects the same
 * settings (see `descriptorRoomProblem`), and a reload that let them through would leave probes
 * failing with EMFILE. Only the probes are counted anew, because the listeners, threads and
 * servers change only with a restart.
 */
export function reloadDescriptorProblem(settings: Settings, atStart: StartDescriptorCount, limit: number | undefined): string | undefined {
  if (limit === undefined) {
    return undefined;
  }

  const probes = probeDescriptors(settings);
  const needed = requiredDescriptorLimit(atStart.descriptors + probes, atStart.httpServers);
  if (probes === 0 || limit >= needed) {
    return undefined;
  }

  return `the balancer needs at least ${needed} file descriptors to probe ${probes} backend${probes === 1 ? "" : "s"} and serve one connection, but the descriptor limit is ${limit}; probe fewer backends, or raise ulimit -n (LimitNOFILE= under systemd) and restart`;
}

/**
 * Returns the error for a descriptor `limit` that cannot hold a start of `settings` and one
 * connection, naming the limit needed and how to raise it, or undefined. The limit and the
 * `open` descriptors are undefined where they cannot be read, or the limit is unlimited, and
 * nothing is checked then. The error names `--workers`, or with `workersFile`, the config file
 * that sets `workers`.
 */
export function descriptorRoomProblem(settings: Settings, watchesConfig: boolean, limit: number | undefined, open: number | undefined, workersFile?: string): string | undefined {
  if (limit === undefined || open === undefined) {
    return undefined;
  }

  const probes = probeDescriptors(settings);
  const httpServers = httpServerCount(settings);
  const needed = requiredDescriptorLimit(startDescriptors(settings, watchesConfig, open) + probes, httpServers);
  if (limit >= needed) {
    return undefined;
  }
  const threads = relayThreadCount(settings);
  const purposes = [
    ...(threads > 1 ? ["start its threads"] : []),
    ...(probes > 0 ? [`probe ${probes} backend${probes === 1 ? "" : "s"}`] : []),
    ...(httpServers > 0 ? [`hold ${describeHttpConnections(settings, needed)}`] : []),
    "serve one connection",
  ];
  const needs = `needs at least ${needed} file descriptors to ${joinWords(purposes, "and")}, but the descriptor limit is ${limit}; raise ulimit -n (LimitNOFILE= under systemd)`;
  if (threads > 1) {
    const [given, name] = workersFile === undefined ? [`--workers ${threads}`, "--workers"] : [`workers: ${threads} (in ${workersFile})`, "workers"];

    return `${given} ${needs} or lower ${name}`;
  }

  return `the balancer ${needs}`;
}

/** Describes the connections the admin API and the metrics server of `settings` may hold under `limit`, such as "4 admin API connections". */
function describeHttpConnections(settings: Settings, limit: number): string {
  const servers = [...(settings.providers.admin === "off" ? [] : ["admin API"]), ...(settings.providers.metrics === "off" ? [] : ["metrics server"])];

  return `${servers.length * httpConnectionCap(limit)} ${joinWords(servers, "and")} connections`;
}
