import { afterEach, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AdminServer } from "../src/admin-server.ts";
import { createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import { BackendStates } from "../src/backend-states.ts";
import { type BalancerStatus, collectStatus } from "../src/balancer-status.ts";
import { parseArgs } from "../src/cli.ts";
import { AdminApiProvider } from "../src/providers/admin-api-provider.ts";
import { StaticProvider } from "../src/providers/static-provider.ts";
import { formatProcess, formatStatus, formatUptime, runStatus } from "../src/status-command.ts";
import { BalancerScenario } from "./support/balancer-scenario.ts";

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "tinylb-status-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));

  return dir;
}

/** Runs the status command in this process and collects what it prints. */
async function status(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await runStatus(parseArgs(["status", ...argv]), { stdout: (text) => (stdout += text), stderr: (text) => (stderr += text) });

  return { code, stdout, stderr };
}

/** Starts a balancer whose file provider and API provider publish the same id "a" with different targets. */
async function startConflictingBalancer(tokenFile?: string): Promise<{ socket: string; scenario: BalancerScenario }> {
  const scenario = new BalancerScenario();
  cleanup.push(() => scenario.close());
  scenario.startBackends(["a", "b"]);
  const api = new AdminApiProvider(new BackendSet([createBackend("a", scenario.target("b"))]));
  await scenario.start(new StaticProvider(new BackendSet([createBackend("a", scenario.target("a"))]), "file"), api);
  const socket = join(tempDir(), "admin.sock");
  const admin = await AdminServer.start({
    address: { kind: "unix", path: socket },
    tokenFile,
    context: { api, states: new BackendStates(scenario.server), union: scenario.union, status: () => collectStatus(scenario.server, scenario.union), metrics: () => "" },
  });
  cleanup.push(() => admin.stop());

  return { socket, scenario };
}

test("status lists a conflict", async () => {
  const { socket, scenario } = await startConflictingBalancer();

  const result = await status(["--admin", `unix:${socket}`]);

  expect(result.code).toBe(0);
  expect(result.stderr).toBe("");
  expect(result.stdout).toContain(`Conflict: "a" from "file" (${scenario.target("a")}) is used; "api" (${scenario.target("b")}) is ignored\n`);
});

test("status sends the bearer token", async () => {
  const dir = tempDir();
  const tokenFile = join(dir, "token");
  writeFileSync(tokenFile, "token-for-status-0123456789\n");
  const wrongFile = join(dir, "wrong");
  writeFileSync(wrongFile, "another-token-0123456789\n");
  const { socket } = await startConflictingBalancer(tokenFile);

  const right = await status(["--admin", `unix:${socket}`, "--admin-token-file", tokenFile, "--json"]);
  const wrong = await status(["--admin", `unix:${socket}`, "--admin-token-file", wrongFile]);
  const none = await status(["--admin", `unix:${socket}`]);

  expect(right.code).toBe(0);
  expect((JSON.parse(right.stdout) as BalancerStatus).conflicts.length).toBe(1);
  expect(wrong.code).toBe(1);
  expect(wrong.stderr).toBe(
    `tinylb status: the balancer on unix:${socket} responded with status 401: missing or invalid bearer token; check that ${wrongFile} holds the balancer's admin token\n`,
  );
  expect(none.code).toBe(1);
  expect(none.stderr).toBe(
    `tinylb status: the balancer on unix:${socket} responded with status 401: missing or invalid bearer token; pass --admin-token-file FILE with the file that holds the balancer's admin token\n`,
  );
});

test("status rejects --admin off", async () => {
  const result = await status(["--admin", "off"]);

  expect(result.code).toBe(2);
  expect(result.stderr).toContain("--admin off leaves no address to connect to");
});

test.each([
  ["a folder", (path: string) => mkdirSync(path)],
  ["a regular file", (path: string) => writeFileSync(path, "")],
])("status names %s at the admin path", async (type, create) => {
  const path = join(tempDir(), "admin.sock");
  create(path);

  const result = await status(["--admin", `unix:${path}`]);

  expect(result.code).toBe(1);
  expect(result.stderr).toBe(`tinylb status: cannot connect to unix:${path}: ${path} is ${type}, not a socket; pass --admin ADDR with the balancer's admin socket\n`);
});

test("status reports a server that is not tinylb", async () => {
  const socket = join(tempDir(), "other.sock");
  // A mock: any HTTP server that is not a tinylb admin API, here one that returns plain text.
  const other = Bun.serve({ unix: socket, fetch: () => new Response("hello") });
  cleanup.push(() => other.stop(true));

  const result = await status(["--admin", `unix:${socket}`]);

  expect(result.code).toBe(1);
  expect(result.stderr).toBe(`tinylb status: the response from unix:${socket} is not JSON; is this a tinylb admin API?\n`);
});

test("status reports a server that is not HTTP", async () => {
  // A mock: a TCP server on loopback that sends a non-HTTP banner, as an SSH server does.
  const other = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(socket) {
        // The connection stays open, so fetch fails on the banner and not on a closed socket.
        socket.write("SSH-2.0-mock\r\n\r\n");
      },
    },
  });
  cleanup.push(() => other.stop(true));

  const result = await status(["--admin", `127.0.0.1:${other.port}`]);

  expect(result.code).toBe(1);
  expect(result.stderr).toBe(
    `tinylb status: 127.0.0.1:${other.port} does not respond as a tinylb admin API (the response is not HTTP); pass --admin ADDR with the balancer's admin address\n`,
  );
  expect(result.stderr).not.toContain("verbose");
});

test("status names the cap for a connection closed at accept", async () => {
  const socket = join(tempDir(), "capped.sock");
  // A listener that closes each connection at once, as a tinylb admin API at its connection cap does.
  const capped = Bun.listen({ unix: socket, socket: { open: (client) => void client.terminate(), data() {} } });
  cleanup.push(() => capped.stop(true));

  const result = await status(["--admin", `unix:${socket}`]);

  expect(result.code).toBe(1);
  expect(result.stderr).toBe(
    `tinylb status: unix:${socket} closed the connection before a response; a tinylb at its admin connection cap does that, so retry in a few seconds, or pass --admin ADDR with the balancer's admin address\n`,
  );
});

test("status reports an HTTP error from another server", async () => {
  const socket = join(tempDir(), "other.sock");
  // A mock: an HTTP server that is not a tinylb admin API and has no /v1/backends.
  const other = Bun.serve({ unix: socket, fetch: () => new Response("not found", { status: 404 }) });
  cleanup.push(() => other.stop(true));

  const result = await status(["--admin", `unix:${socket}`]);

  expect(result.code).toBe(1);
  expect(result.stderr).toBe(
    `tinylb status: unix:${socket} does not respond as a tinylb admin API (status 404 without a tinylb error); pass --admin ADDR with the balancer's admin address\n`,
  );
});

test("formatStatus marks an empty set", () => {
  const text = formatStatus({ listeners: [], backends: [], removed: [], conflicts: [], providers: [], degraded: false, shuttingDown: false });

  expect(text.split("\n")).toEqual([
    "ID  TARGET  PROVIDER  ACTIVE  TOTAL  BYTES TO BACKEND  BYTES TO CLIENT  HEALTH  STATE",
    "(the backend set is empty)",
    "",
    "Listeners: (none)",
    "",
  ]);
});

test("formatStatus shows a retrying backend", () => {
  const backend = { id: "a", target: "127.0.0.1:9", provider: "static", active: 0, total: 3, bytesToBackend: 0, bytesToClient: 0, dialFailures: 3, disabled: false };
  const text = formatStatus({
    listeners: ["127.0.0.1:7443"],
    backends: [{ ...backend, health: "retrying", healthy: false, healthCause: "dial back-off of 4s ended; the next client retries it" }],
    removed: [],
    conflicts: [],
    providers: [],
    degraded: true,
    shuttingDown: false,
  });

  expect(text.split("\n")[1]).toMatch(/^a\s.*\sretrying\s+enabled$/);
  expect(text).toContain('Retrying: "a": dial back-off of 4s ended; the next client retries it\n');
  expect(text).not.toContain("Unhealthy:");
});

test("formatStatus marks a backend without probe", () => {
  const backend = { id: "a", target: "127.0.0.1:9", provider: "static", active: 0, total: 3, bytesToBackend: 0, bytesToClient: 0, dialFailures: 0, disabled: false, health: "healthy" as const, healthy: true, healthCause: "" };
  const status = { listeners: [], removed: [], conflicts: [], providers: [], degraded: false, shuttingDown: false };

  const unprobed = formatStatus({ ...status, backends: [{ ...backend, probed: false }] });
  const probed = formatStatus({ ...status, backends: [{ ...backend, probed: true }] });
  // A balancer from before the field sends none, and its backends show as they did.
  const older = formatStatus({ ...status, backends: [backend] });

  expect(unprobed.split("\n")[1]).toMatch(/\shealthy \(no probe\)\s+enabled$/);
  expect(probed.split("\n")[1]).toMatch(/\s0\s+healthy\s+enabled$/);
  expect(older.split("\n")[1]).toMatch(/\s0\s+healthy\s+enabled$/);
});

test("formatStatus lists draining removed ids", () => {
  const text = formatStatus({
    listeners: [],
    backends: [],
    removed: [{ id: "old", target: "127.0.0.1:9", active: 2, total: 5, bytesToBackend: 10, bytesToClient: 20, targetInUse: false }],
    conflicts: [],
    providers: [],
    degraded: false,
    shuttingDown: false,
  });

  expect(text.split("\n")[1]).toMatch(/^old\s+127\.0\.0\.1:9\s+\(removed\)\s+2\s+5\s+10\s+20\s+-\s+-$/);
  expect(text).toContain("(the backend set is empty)\n");
  expect(text).toContain('Removed: "old" left the set; its 2 open connections are draining\n');
});

test("formatStatus names late relay workers", () => {
  const base = { listeners: [], backends: [], removed: [], conflicts: [], providers: [], degraded: false, shuttingDown: false };

  expect(formatStatus({ ...base, lateWorkers: [] })).not.toContain("Counters late:");
  expect(formatStatus(base)).not.toContain("Counters late:");
  expect(formatStatus({ ...base, lateWorkers: [2] })).toContain("\nCounters late: relay worker 2 did not send counters within 250 ms, so its part of the counts is up to a second old\n");
  expect(formatStatus({ ...base, lateWorkers: [1, 3] })).toContain("\nCounters late: relay workers 1 and 3 did not send counters within 250 ms");
});

test("formatStatus shows the connections line", () => {
  const base = { listeners: [], backends: [], removed: [], conflicts: [], providers: [], degraded: false, shuttingDown: false };

  expect(formatStatus({ ...base, connections: 0, maxConnections: 0 })).toContain("\nConnections: 0 open or dialing a backend; no cap set (--max-connections, maxConnections)\n");
  expect(formatStatus({ ...base, connections: 7, maxConnections: 100 })).toContain("\nConnections: 7 open or dialing a backend; cap 100 (--max-connections, maxConnections)\n");
  expect(formatStatus({ ...base, connections: 7, maxConnections: 0, maxConnectionsPerBackend: 3 })).toContain(
    "\nPer-backend cap: 3 open or dialing per target (--max-connections-per-backend, maxConnectionsPerBackend)\n",
  );
  expect(formatStatus({ ...base, connections: 7, maxConnections: 0, maxConnectionsPerBackend: 0 })).not.toContain("Per-backend cap:");
  // A status from a tinylb without the count has no such line.
  expect(formatStatus(base)).not.toContain("Connections:");
});

test("formatStatus gives a drain's deadline", () => {
  const removed = { id: "old", target: "127.0.0.1:9", active: 2, total: 5, bytesToBackend: 10, bytesToClient: 20, targetInUse: false, drainEndsInMs: 2500 };
  const text = formatStatus({ listeners: [], backends: [], removed: [removed], conflicts: [], providers: [], degraded: false, shuttingDown: false });

  expect(text).toContain('Removed: "old" left the set; its 2 open connections are draining; they are closed in 3s if still open\n');
});

test("formatStatus marks disabled backends", () => {
  const backend = { target: "127.0.0.1:9", provider: "static", active: 0, total: 3, bytesToBackend: 0, bytesToClient: 0, dialFailures: 0, health: "healthy", healthy: true, healthCause: "" } as const;
  const text = formatStatus({
    listeners: [],
    backends: [
      { ...backend, id: "a", disabled: false },
      { ...backend, id: "b", active: 2, disabled: true },
      { ...backend, id: "c", disabled: true },
    ],
    removed: [],
    conflicts: [],
    providers: [],
    degraded: false,
    shuttingDown: false,
  });
  const rows = text.split("\n");

  expect(rows[0]).toMatch(/\sHEALTH\s+STATE$/);
  expect(rows[1]).toMatch(/^a\s.*\shealthy\s+enabled$/);
  expect(rows[2]).toMatch(/^b\s.*\shealthy\s+disabled$/);
  expect(text).toContain('\nDisabled: "b" gets no new clients; its 2 open connections stay until they close\n');
  expect(text).toContain('\nDisabled: "c" gets no new clients; it has no open connections\n');
  expect(text).not.toContain('Disabled: "a"');
});

test("formatStatus says when every backend is disabled", () => {
  const backend = { target: "127.0.0.1:9", provider: "static", active: 1, total: 3, bytesToBackend: 0, bytesToClient: 0, dialFailures: 0, health: "healthy", healthy: true, healthCause: "", disabled: true } as const;
  const text = formatStatus({ listeners: [], backends: [{ ...backend, id: "a" }, { ...backend, id: "b" }], removed: [], conflicts: [], providers: [], degraded: false, shuttingDown: false });

  expect(text).toContain("\nDisabled: every backend is disabled, so clients are closed; put one back with tinylb enable ID\n");
  expect(text).not.toContain('Disabled: "a"');
});

test.each([
  [0, "0s"],
  [59_999, "59s"],
  [61_000, "1m1s"],
  [3_600_000, "1h0m0s"],
  [2 * 86_400_000 + 5000, "2d0h0m5s"],
])("formatUptime %p", (ms, text) => {
  expect(formatUptime(ms)).toBe(text);
});

test("formatProcess shows each reload result", () => {
  const process = { version: "1.2.3", commit: "abc123", pid: 42, startedAt: "2026-01-02T03:04:05.000Z", uptimeMs: 61_000 };
  const at = "2026-01-02T03:05:00.000Z";

  expect(formatProcess(process)).toEqual(["tinylb 1.2.3 (commit abc123), pid 42, up 1m1s since 2026-01-02T03:04:05.000Z", "Config file: none"]);
  expect(formatProcess({ ...process, configFile: "/etc/tinylb.yaml" })[1]).toBe("Config file: /etc/tinylb.yaml; not reloaded since start");
  expect(formatProcess({ ...process, configFile: "/etc/tinylb.yaml", lastReload: { at, reason: "file event", result: "applied" } })[1]).toBe(
    `Config file: /etc/tinylb.yaml; last reload ${at} (file event) applied`,
  );
  expect(formatProcess({ ...process, configFile: "/etc/tinylb.yaml", lastReload: { at, reason: "SIGHUP", result: "rejected", error: "unknown key" } })[1]).toBe(
    `Config file: /etc/tinylb.yaml; last reload ${at} (SIGHUP) rejected, so the last good config keeps serving: unknown key`,
  );
  expect(formatProcess({ ...process, configFile: "/etc/tinylb.yaml", lastReload: { at, reason: "poll", result: "settling" } })[1]).toBe(
    `Config file: /etc/tinylb.yaml; last reload ${at} (poll) removes or retargets backends or drops settings, and is applied 1s after that read unless the file changes again`,
  );
});

test("formatProcess names settings waiting for restart", () => {
  const process = { version: "1.2.3", commit: "abc123", pid: 42, startedAt: "2026-01-02T03:04:05.000Z", uptimeMs: 61_000, configFile: "/etc/tinylb.yaml" };

  expect(formatProcess({ ...process, pendingRestart: ["listen", "workers"] })[2]).toBe("Restart needed: the config file changes listen and workers; the running values stay until tinylb restarts");
  expect(formatProcess({ ...process, pendingRestart: [] })).toHaveLength(2);
});

test("formatStatus puts the process lines first", () => {
  const process = { version: "1.2.3", commit: "abc123", pid: 42, startedAt: "2026-01-02T03:04:05.000Z", uptimeMs: 5000 };
  const text = formatStatus({ process, listeners: [], backends: [], removed: [], conflicts: [], providers: [], degraded: false, shuttingDown: false });

  expect(text.split("\n").slice(0, 4)).toEqual(["tinylb 1.2.3 (commit abc123), pid 42, up 5s since 2026-01-02T03:04:05.000Z", "Config file: none", "", "ID  TARGET  PROVIDER  ACTIVE  TOTAL  BYTES TO BACKEND  BYTES TO CLIENT  HEALTH  STATE"]);
});

test("formatStatus names unconfirmed provider sets", () => {
  const status = { listeners: [], backends: [], removed: [], conflicts: [], degraded: false, shuttingDown: false };
  const providers = [
    { name: "dns:api.test:6443", backends: 0, published: false, failing: true, failingForMs: 8000, lastError: "refused" },
    { name: "etcd:/tinylb/", backends: 3, published: false },
    { name: "kubernetes", backends: 2, published: true, failing: true, failingForMs: 2000, lastError: "HTTP 500" },
    { name: "dns-srv:_api._tcp.test", backends: 2, published: true },
  ];

  const lines = formatStatus({ ...status, providers }).split("\n");

  expect(lines).toContain('Provider failing: "dns:api.test:6443" has failed for 8s and has no set yet: refused');
  expect(lines).toContain('Provider pending: "etcd:/tinylb/" serves 3 saved backends it has not confirmed yet');
  expect(lines).toContain('Provider failing: "kubernetes" has failed for 2s and keeps its last set of 2: HTTP 500');
  expect(lines.filter((line) => line.includes("dns-srv"))).toEqual([]);
});

test("formatStatus escapes control characters", () => {
  const process = { version: "1.2.3\u001b]0;PWNED\u0007", commit: "abc123", pid: 42, startedAt: "2026-01-02T03:04:05.000Z", uptimeMs: 5000 };
  const backend = { id: "a\u001b[2J", target: "unix:/tmp/a\u001b[31mX", provider: "api", active: 0, total: 0, bytesToBackend: 0, bytesToClient: 0, dialFailures: 0, health: "healthy", healthy: true, healthCause: "", disabled: false } as const;
  const provider = { name: "kubernetes", backends: 1, published: true, failing: true, failingForMs: 2000, lastError: "HTTP 500 (boom \u001b[31mRED\nFAKE level=error)" };
  const text = formatStatus({ process, listeners: ["127.0.0.1:7443"], backends: [backend], removed: [], conflicts: [], providers: [provider], degraded: false, shuttingDown: false });
  const lines = text.split("\n");

  expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f]/);
  expect(lines[0]).toBe("tinylb 1.2.3\\u001b]0;PWNED\\u0007 (commit abc123), pid 42, up 5s since 2026-01-02T03:04:05.000Z");
  expect(lines[3]).toBe("ID          TARGET                  PROVIDER  ACTIVE  TOTAL  BYTES TO BACKEND  BYTES TO CLIENT  HEALTH   STATE");
  expect(lines[4]).toBe("a\\u001b[2J  unix:/tmp/a\\u001b[31mX  api            0      0                 0                0  healthy  enabled");
  // The columns line up as printed, with the escapes counted.
  expect(lines[4]!.indexOf("api")).toBe(lines[3]!.indexOf("PROVIDER"));
  expect(lines).toContain('Provider failing: "kubernetes" has failed for 2s and keeps its last set of 1: HTTP 500 (boom \\u001b[31mRED\\nFAKE level=error)');
});
