import { type Address, formatAddress } from "./address.ts";
import { readTokenFile } from "./admin-server.ts";
import type { BalancerStatus, RemovedBackendStatus } from "./balancer-status.ts";
import type { CliOptions } from "./cli.ts";
import { ConfigError } from "./config.ts";
import { defaultAdminAddress } from "./provider-settings.ts";
import { formatDuration } from "./duration.ts";

/** Milliseconds `tinylb status` waits for the balancer's response. */
const STATUS_TIMEOUT_MS = 5000;

/** Output streams of the command, replaceable in tests. */
export interface StatusOutput {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const PROCESS_OUTPUT: StatusOutput = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

/**
 * Runs `tinylb status`: requests `GET /v1/backends` from a running balancer's admin API
 * and prints a table (or with `--json`, the JSON response). Returns the exit code: 0, or 1
 * with a one-line error when no balancer responds or the response is an error.
 */
export async function runStatus(cli: CliOptions, output: StatusOutput = PROCESS_OUTPUT): Promise<number> {
  const admin = cli.providers?.admin ?? defaultAdminAddress();
  if (admin === "off") {
    output.stderr("tinylb status: --admin off leaves no address to connect to; pass the balancer's admin address\n");

    return 2;
  }

  let status: BalancerStatus;
  try {
    status = await fetchStatus(admin, cli.providers?.adminTokenFile);
  } catch (error) {
    output.stderr(`tinylb status: ${(error as Error).message}\n`);

    return 1;
  }

  output.stdout(cli.json ? JSON.stringify(status, null, 2) + "\n" : formatStatus(status));

  return 0;
}

/**
 * Fetches the status from an admin API.
 *
 * @throws {Error} naming the address when nothing responds, or the response is an error or not JSON.
 */
export async function fetchStatus(admin: Address, tokenFile?: string): Promise<BalancerStatus> {
  const name = formatAddress(admin);
  let token: string | undefined;
  try {
    token = tokenFile === undefined ? undefined : readTokenFile(tokenFile);
  } catch (error) {
    throw new Error((error as ConfigError).message, { cause: error });
  }

  const url = admin.kind === "unix" ? "http://localhost/v1/backends" : `http://${name}/v1/backends`;
  const init: RequestInit & { unix?: string } = {
    signal: AbortSignal.timeout(STATUS_TIMEOUT_MS),
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  };
  if (admin.kind === "unix") {
    init.unix = admin.path;
  }

  let response: Response;
  let body: string;
  try {
    response = await fetch(url, init);
    body = await response.text();
  } catch (error) {
    const failure = describeFetchError(error);
    if (failure.connected) {
      throw new Error(`${name} does not respond as a tinylb admin API (${failure.reason}); pass --admin ADDR with the balancer's admin address`, { cause: error });
    }
    throw new Error(`no balancer responds on ${name} (${failure.reason}); is tinylb running? Pass --admin ADDR for another address`, { cause: error });
  }

  if (!response.ok) {
    const detail = parseError(body);
    if (detail === undefined) {
      throw new Error(`${name} does not respond as a tinylb admin API (status ${response.status} without a tinylb error); pass --admin ADDR with the balancer's admin address`);
    }
    throw new Error(`the balancer on ${name} responded with status ${response.status}: ${detail}${fixFor(response.status, tokenFile)}`);
  }
  try {
    return JSON.parse(body) as BalancerStatus;
  } catch {
    throw new Error(`the response from ${name} is not JSON; is this a tinylb admin API?`);
  }
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

/** Formats the status as a table of backends, then listeners and conflicts. */
export function formatStatus(status: BalancerStatus): string {
  const header = ["ID", "TARGET", "PROVIDER", "ACTIVE", "TOTAL", "BYTES TO BACKEND", "BYTES TO CLIENT", "HEALTH"];
  const rows = status.backends.map((backend) => [
    backend.id,
    backend.target,
    backend.provider,
    String(backend.active),
    String(backend.total),
    String(backend.bytesToBackend),
    String(backend.bytesToClient),
    backend.health,
  ]);
  for (const backend of status.removed) {
    rows.push([backend.id, backend.target, "(removed)", String(backend.active), String(backend.total), String(backend.bytesToBackend), String(backend.bytesToClient), "-"]);
  }
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]): string => cells.map((cell, column) => (column < 3 || column === 7 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join("  ").trimEnd();

  const lines = [line(header), ...rows.map(line)];
  if (status.backends.length === 0) {
    lines.push("(the backend set is empty)");
  }
  lines.push("", `Listeners: ${status.listeners.join(", ") || "(none)"}`);
  if (status.connections !== undefined) {
    lines.push(`Connections: ${formatConnections(status.connections, status.maxConnections ?? 0)}`);
    const perBackend = status.maxConnectionsPerBackend ?? 0;
    if (perBackend > 0) {
      lines.push(`Per-backend cap: ${perBackend} open or dialing per target (--max-connections-per-backend, maxConnectionsPerBackend)`);
    }
  }
  if (status.shuttingDown) {
    const ends = status.shutdownEndsInMs === undefined ? "" : `; the connections still open are closed in ${formatTimeLeft(status.shutdownEndsInMs)}`;
    lines.push(`Shutting down: no new clients are accepted${ends}`);
  }
  if (status.degraded) {
    lines.push("Degraded: every backend is unhealthy, so each is tried anyway");
  }
  for (const backend of status.backends.filter((entry) => entry.healthy === false)) {
    const label = backend.health === "retrying" ? "Retrying" : "Unhealthy";
    lines.push(`${label}: "${backend.id}": ${backend.healthCause}`);
  }
  for (const backend of status.removed) {
    lines.push(`Removed: "${backend.id}" left the set; ${describeRemovedConnections(backend)}`);
  }
  for (const conflict of status.conflicts) {
    lines.push(
      `Conflict: "${conflict.id}" from "${conflict.kept.provider}" (${conflict.kept.target}) is used; "${conflict.ignored.provider}" (${conflict.ignored.target}) is ignored`,
    );
  }

  return lines.join("\n") + "\n";
}

/** Describes what happens to the open connections of an id that left the set: they stay, or they drain until a deadline. */
function describeRemovedConnections(backend: RemovedBackendStatus): string {
  const oneOpen = backend.active === 1;
  if (backend.targetInUse) {
    const connections = oneOpen ? "its 1 open connection stays until it closes" : `its ${backend.active} open connections stay until they close`;

    return `${connections}, because its target is still in use`;
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

/** Returns the next step for an error status of the admin API, or "". */
function fixFor(status: number, tokenFile: string | undefined): string {
  if (status !== 401) {
    return "";
  }

  return tokenFile === undefined
    ? "; pass --admin-token-file FILE with the file that holds the balancer's admin token"
    : `; check that ${tokenFile} holds the balancer's admin token`;
}

/** A failed request in words; `connected` is true when something listened but did not respond with HTTP. */
interface FetchFailure {
  connected: boolean;
  reason: string;
}

function describeFetchError(error: unknown): FetchFailure {
  const code = (error as { code?: string }).code;
  if (code === "ENOENT" || code === "FailedToOpenSocket") {
    return { connected: false, reason: "the socket does not exist" };
  }
  if (code === "ECONNREFUSED" || code === "ConnectionRefused") {
    return { connected: false, reason: "connection refused" };
  }
  if (code === "Malformed_HTTP_Response") {
    return { connected: true, reason: "the response is not HTTP" };
  }
  if (code === "ECONNRESET") {
    return { connected: true, reason: "the connection was closed before a response" };
  }
  if ((error as Error).name === "TimeoutError") {
    return { connected: true, reason: `no answer within ${STATUS_TIMEOUT_MS} ms` };
  }

  // Bun's fetch errors end with a hint for developers about a `verbose` option.
  const message = (error as Error).message ?? String(error);

  return { connected: false, reason: message.replace(/\.? For more information, pass `verbose: true`.*$/s, "") };
}

function parseError(body: string): string | undefined {
  try {
    const parsed = JSON.parse(body) as { error?: unknown };

    return typeof parsed.error === "string" ? parsed.error : undefined;
  } catch {
    return undefined;
  }
}
