import { type AdminCommandOutput, PROCESS_OUTPUT, requestAdmin, runAdminCommand } from "./admin-client.ts";
import type { Address } from "./address.ts";
import type { HealthCondition } from "./backend-health.ts";
import type { BalancerStatus, ProviderStatus, RemovedBackendStatus } from "./balancer-status.ts";
import type { CliOptions } from "./cli.ts";
import { formatDuration } from "./duration.ts";
import type { ProcessStatus } from "./process-status.ts";
import type { ReloadResult } from "./providers/file-provider.ts";
import { SETTLE_MS } from "./providers/save-settle.ts";
import { formatSlowStart } from "./slow-start-setting.ts";
import { escapeControlCharacters } from "./logger.ts";
import { joinWords } from "./word-lists.ts";
import { STATS_REPLY_MS } from "./worker-pool.ts";

/** Labels of the lines that explain a backend that is not healthy, by its health. */
const HEALTH_LABELS: Partial<Record<HealthCondition, string>> = { retrying: "Retrying", pending: "Pending" };

/**
 * Runs `tinylb status`: requests `GET /v1/backends` from a running balancer's admin API
 * and prints a table (or with `--json`, the JSON response). Returns the exit code: 0, or 1
 * with a one-line error when no balancer responds or the response is an error.
 */
export function runStatus(cli: CliOptions, output: AdminCommandOutput = PROCESS_OUTPUT): Promise<number> {
  return runAdminCommand("status", cli, output, async (admin, tokenFile) => {
    const status = await fetchStatus(admin, tokenFile);

    return cli.json ? JSON.stringify(status, null, 2) + "\n" : formatStatus(status);
  });
}

/**
 * Fetches the status from an admin API.
 *
 * @throws {Error} naming the address when nothing responds, or the response is an error or not JSON.
 */
export async function fetchStatus(admin: Address, tokenFile?: string): Promise<BalancerStatus> {
  return (await requestAdmin(admin, tokenFile, "GET", "/v1/backends")) as BalancerStatus;
}

/**
 * Describes the clients open or dialing against the global cap, such as "3 open or dialing a
 * backend; cap 100 (--max-connections, maxConnections)". The flag and the config key are both
 * named, because the status does not know which one set the cap.
 */
function formatConnections(open: number, max: number): string {
  const cap = max === 0 ? "no cap set" : `cap ${max}`;

  return `${open} open or dialing a backend; ${cap} (--max-connections, maxConnections)`;
}

/** Status lines of the balance modes, keyed as `--balance` spells them. A mode missing here is printed as it is. */
const BALANCE_DESCRIPTIONS: Record<string, string> = {
  roundrobin: "roundrobin (new clients go to the backends in turn)",
  leastconn: "leastconn (new clients go to the backend with the fewest connections open or dialing)",
};

/** Names a listener, and the descriptor of a socket the service manager passed for it. */
function describeListener(listener: string, status: BalancerStatus): string {
  const inherited = status.inheritedListeners?.find((entry) => entry.listener === listener);
  if (inherited === undefined) {
    return listener;
  }

  const name = inherited.fdName === undefined ? "" : ` "${inherited.fdName}"`;

  return `${listener} (socket from the service manager, fd ${inherited.fd}${name})`;
}

/**
 * Describes the set a provider serves: its last set, the backends saved in the state file that
 * it has not confirmed yet, or none. A balancer from before the `published` field sends none,
 * and its providers read as published.
 */
function describeKeptSet(provider: ProviderStatus): string {
  if (provider.published !== false) {
    return `keeps its last set of ${provider.backends}`;
  }

  return provider.backends === 0 ? "has no set yet" : `serves ${provider.backends} saved backend${provider.backends === 1 ? "" : "s"} it has not confirmed yet`;
}

/**
 * Formats the status as a table of backends, then listeners and conflicts. Control characters
 * in the response, such as ESC or a newline in a target or a provider's error, are written as
 * their JSON escapes (`\u001b`, `\n`), so they neither drive the terminal nor forge a line.
 */
export function formatStatus(status: BalancerStatus): string {
  const header = ["ID", "TARGET", "PROVIDER", "ACTIVE", "TOTAL", "BYTES TO BACKEND", "BYTES TO CLIENT", "HEALTH", "STATE"];
  const rows = status.backends.map((backend) => [
    backend.id,
    backend.target,
    backend.provider,
    String(backend.active),
    String(backend.total),
    String(backend.bytesToBackend),
    String(backend.bytesToClient),
    // As HAProxy's "no check": healthy then means only that no dial failed lately.
    backend.health === "healthy" && backend.probed === false ? "healthy (no probe)" : backend.health,
    // A balancer from before the disabled state sends no `disabled` field.
    backend.disabled === true ? "disabled" : "enabled",
  ]);
  for (const backend of status.removed) {
    rows.push([backend.id, backend.target, "(removed)", String(backend.active), String(backend.total), String(backend.bytesToBackend), String(backend.bytesToClient), "-", "-"]);
  }
  // Escaped before the widths are measured, so that the columns line up as printed.
  const cells = rows.map((row) => row.map(escapeControlCharacters));
  const widths = header.map((title, column) => Math.max(title.length, ...cells.map((row) => row[column]!.length)));
  const line = (cells: string[]): string => cells.map((cell, column) => (column < 3 || column >= 7 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join("  ").trimEnd();

  const lines = status.process === undefined ? [] : [...formatProcess(status.process), ""];
  lines.push(line(header), ...cells.map(line));
  if (status.backends.length === 0) {
    lines.push("(the backend set is empty)");
  }
  lines.push("", `Listeners: ${status.listeners.map((listener) => describeListener(listener, status)).join(", ") || "(none)"}`);
  if (status.balance !== undefined) {
    lines.push(`Balance: ${BALANCE_DESCRIPTIONS[status.balance] ?? status.balance}`);
  }
  lines.push(...describeSlowStart(status));
  if (status.connections !== undefined) {
    lines.push(`Connections: ${formatConnections(status.connections, status.maxConnections ?? 0)}`);
    const perBackend = status.maxConnectionsPerBackend ?? 0;
    if (perBackend > 0) {
      lines.push(`Per-backend cap: ${perBackend} open or dialing per target (--max-connections-per-backend, maxConnectionsPerBackend)`);
    }
  }
  lines.push(...describeLateWorkers(status.lateWorkers ?? []));
  if (status.shuttingDown) {
    const ends = status.shutdownEndsInMs === undefined ? "" : `; the connections still open are closed in ${formatTimeLeft(status.shutdownEndsInMs)}`;
    lines.push(`Shutting down: no new clients are accepted${ends}`);
  }
  if (status.degraded) {
    lines.push("Degraded: every enabled backend is unhealthy or pending, so each is tried anyway");
  }
  lines.push(...describeDisabled(status));
  for (const backend of status.backends.filter((entry) => entry.slowStartEndsInMs !== undefined)) {
    const percent = Math.round((backend.slowStartWeight ?? 1) * 100);
    lines.push(`Slow start: "${backend.id}" gets ${percent}% of a full share of new clients, a full share in ${formatTimeLeft(backend.slowStartEndsInMs!)}`);
  }
  for (const backend of status.backends.filter((entry) => entry.healthy === false)) {
    const label = HEALTH_LABELS[backend.health] ?? "Unhealthy";
    lines.push(`${label}: "${backend.id}": ${backend.healthCause}`);
  }
  for (const backend of status.removed) {
    lines.push(`Removed: "${backend.id}" left the set; ${describeRemovedConnections(backend)}`);
  }
  for (const provider of status.providers.filter((entry) => entry.failing === true)) {
    const since = provider.failingForMs === undefined ? "" : ` for ${formatTimeLeft(provider.failingForMs)}`;
    lines.push(`Provider failing: "${provider.name}" has failed${since} and ${describeKeptSet(provider)}: ${provider.lastError ?? "unknown error"}`);
  }
  for (const provider of status.providers.filter((entry) => entry.stale === true)) {
    lines.push(`Provider stale: "${provider.name}" ${describeKeptSet(provider)} since ${provider.staleSince ?? "an unknown time"}: ${provider.staleReason ?? "no usable backend"}`);
  }
  for (const provider of status.providers.filter((entry) => entry.published === false && entry.backends > 0 && entry.failing !== true && entry.stale !== true)) {
    lines.push(`Provider pending: "${provider.name}" ${describeKeptSet(provider)}`);
  }
  for (const conflict of status.conflicts) {
    lines.push(
      `Conflict: "${conflict.id}" from "${conflict.kept.provider}" (${conflict.kept.target}) is used; "${conflict.ignored.provider}" (${conflict.ignored.target}) is ignored`,
    );
  }

  return lines.map(escapeControlCharacters).join("\n") + "\n";
}

/** Returns the line that names the relay workers whose counters are not current, if any. */
function describeLateWorkers(workers: readonly number[]): string[] {
  if (workers.length === 0) {
    return [];
  }
  const [names, their] = workers.length === 1 ? ["relay worker", "its"] : ["relay workers", "their"];

  return [`Counters late: ${names} ${joinWords(workers.map(String), "and")} did not send counters within ${STATS_REPLY_MS} ms, so ${their} part of the counts is up to a second old`];
}

/**
 * Formats the header lines: version, pid and uptime, then the config file and its last reload,
 * so a rejected reload shows here as well as in the log.
 */
export function formatProcess(process: ProcessStatus): string[] {
  const running = `tinylb ${process.version} (commit ${process.commit}), pid ${process.pid}, up ${formatUptime(process.uptimeMs)} since ${process.startedAt}`;
  if (process.configFile === undefined) {
    return [running, "Config file: none"];
  }

  const reload = process.lastReload === undefined ? "not reloaded since start" : describeReload(process.lastReload);
  const lines = [running, `Config file: ${process.configFile}; ${reload}`];
  if (process.pendingRestart !== undefined && process.pendingRestart.length > 0) {
    lines.push(`Restart needed: the config file changes ${joinWords(process.pendingRestart, "and")}; the running values stay until tinylb restarts`);
  }

  return lines;
}

function describeReload(reload: ReloadResult): string {
  const when = `last reload ${reload.at} (${reload.reason})`;
  switch (reload.result) {
    case "applied":
      return `${when} applied`;
    case "settling":
      return `${when} removes or retargets backends or drops settings, and is applied ${formatDuration(SETTLE_MS)} after that read unless the file changes again`;
    case "rejected":
      return `${when} rejected, so the last good config keeps serving: ${reload.error ?? "no error given"}`;
  }
}

/** Formats an uptime in whole seconds as days, hours, minutes and seconds, such as "2d3h0m5s" or "42s". */
export function formatUptime(ms: number): string {
  let seconds = Math.floor(ms / 1000);
  const parts: string[] = [];
  for (const [unit, size] of [["d", 86_400], ["h", 3600], ["m", 60]] as const) {
    if (seconds >= size || parts.length > 0) {
      parts.push(`${Math.floor(seconds / size)}${unit}`);
      seconds %= size;
    }
  }
  parts.push(`${seconds}s`);

  return parts.join("");
}

/** Describes each disabled backend in one line, or every one at once when no backend is enabled. */
function describeDisabled(status: BalancerStatus): string[] {
  const disabled = status.backends.filter((backend) => backend.disabled === true);
  if (disabled.length === 0) {
    return [];
  }
  if (disabled.length === status.backends.length) {
    return ["Disabled: every backend is disabled, so clients are closed; put one back with tinylb enable ID"];
  }

  return disabled.map((backend) => `Disabled: "${backend.id}" gets no new clients; ${describeStayingConnections(backend.active)}`);
}

function describeStayingConnections(active: number): string {
  if (active === 0) {
    return "it has no open connections";
  }

  return active === 1 ? "its 1 open connection stays until it closes" : `its ${active} open connections stay until they close`;
}

/** Describes what happens to the open connections of an id that left the set: they stay, or they drain until a deadline. */
function describeRemovedConnections(backend: RemovedBackendStatus): string {
  const oneOpen = backend.active === 1;
  if (backend.targetInUse) {
    return `${describeStayingConnections(backend.active)}, because its target is still in use`;
  }
  const draining = oneOpen ? "its 1 open connection is draining" : `its ${backend.active} open connections are draining`;
  if (backend.drainEndsInMs === undefined) {
    return draining;
  }

  return `${draining}; ${oneOpen ? "it is" : "they are"} closed in ${formatTimeLeft(backend.drainEndsInMs)} if still open`;
}

/** Formats a time left in whole seconds, rounded up, so the last moments read as "1s" rather than "0s". */
function formatTimeLeft(ms: number): string {
  return formatDuration(Math.max(1, Math.ceil(ms / 1000)) * 1000);
}

/**
 * Describes the slow start windows: the balancer's, and those of backends that set their own.
 * Returns no line when no backend gets a window.
 */
function describeSlowStart(status: BalancerStatus): string[] {
  const window = status.slowStartMs ?? 0;
  const overrides = status.backends.filter((backend) => backend.slowStartMs !== undefined && backend.slowStartMs !== window);
  const overrideText = overrides.map((backend) => `"${backend.id}" ${formatSlowStart(backend.slowStartMs!)}`).join(", ");
  if (window > 0) {
    const suffix = overrides.length === 0 ? "" : `; its own (backends[].slowStart): ${overrideText}`;
    return [`Slow start: ${formatDuration(window)} for each backend that returns (--slow-start, slowStart)${suffix}`];
  }

  return overrides.length === 0 ? [] : [`Slow start: only for ${overrideText} when it returns (backends[].slowStart)`];
}
