/**
 * End-to-end tests of `dist/tinylb --metrics`: the read-only routes on a TCP address beside the
 * admin API, the writes it rejects, its start-up errors, a reload that changes it, and shutdown.
 */
import { afterEach, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { TestBackend, TestClient } from "./support/backends.ts";
import { withoutProcessSamples } from "./support/process-samples.ts";
import { rawBody, rawHttpExchange, rawStatus } from "./support/raw-http.ts";
import { tempDirectory } from "./support/temp-directory.ts";
import { listenedPort, runTinylb, TinylbProcess } from "./support/tinylb-process.ts";
import { waitFor, within } from "./support/wait.ts";

/** Backstop for one test; the waits inside carry the real deadlines. */
const TEST_TIMEOUT_MS = 60_000;

const directory = tempDirectory("tinylb-metrics-e2e-");
const adminSocket = join(directory, "admin.sock");

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

interface Balancer {
  tinylb: TinylbProcess;
  /** The balancer's listen port. */
  port: number;
  /** The metrics server's port. */
  metricsPort: number;
}

/** Starts dist/tinylb with the echo backend "a", the admin API on a socket in the test folder, and `--metrics 127.0.0.1:0`. */
async function startBalancer(extra: string[] = []): Promise<Balancer> {
  const backend = TestBackend.echo("a");
  cleanup.push(() => backend.stop());
  const tinylb = TinylbProcess.start(["--listen", "127.0.0.1:0", "--backend", `a=${backend.target}`, "--admin", `unix:${adminSocket}`, "--metrics", "127.0.0.1:0", ...extra]);
  cleanup.push(() => tinylb[Symbol.asyncDispose]());
  await tinylb.waitForLog("tinylb started");

  return { tinylb, port: listenedPort(tinylb.stderr), metricsPort: metricsPortOf(tinylb.stderr) };
}

/** Extracts the port of the `metrics server listening` log line. */
function metricsPortOf(stderr: string): number {
  const match = /metrics server listening .*listener=127\.0\.0\.1:(\d+)/.exec(stderr);
  if (match === null) {
    throw new Error(`no "metrics server listening" line in stderr:\n${stderr}`);
  }

  return Number(match[1]);
}

function viaMetrics(port: number, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`http://127.0.0.1:${port}${path}`, init);
}

function viaAdmin(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`http://localhost${path}`, { ...init, unix: adminSocket } as RequestInit);
}

test.each(["/metrics", "/healthz", "/readyz"])("metrics address serves %s as admin does", async (path) => {
  const { metricsPort } = await startBalancer();

  const fromAdmin = await viaAdmin(path);
  const adminBody = await fromAdmin.text();
  const fromMetrics = await viaMetrics(metricsPort, path);

  expect(fromMetrics.status).toBe(200);
  expect(fromMetrics.status).toBe(fromAdmin.status);
  expect(fromMetrics.headers.get("content-type")).toBe(fromAdmin.headers.get("content-type"));
  expect(withoutProcessSamples(await fromMetrics.text())).toBe(withoutProcessSamples(adminBody));
}, TEST_TIMEOUT_MS);

test("metrics address serves process metrics", async () => {
  const { metricsPort } = await startBalancer();

  const text = await (await viaMetrics(metricsPort, "/metrics")).text();

  for (const [name, type] of [
    ["process_cpu_seconds_total", "counter"],
    ["process_resident_memory_bytes", "gauge"],
    ["process_virtual_memory_bytes", "gauge"],
    ["process_open_fds", "gauge"],
    ["process_max_fds", "gauge"],
    ["process_start_time_seconds", "gauge"],
  ]) {
    expect(text).toContain(`\n# TYPE ${name} ${type}\n`);
    expect(text).toMatch(new RegExp(`^${name} \\d+(\\.\\d+)?$`, "m"));
  }
  const resident = Number(/^process_resident_memory_bytes (\d+)$/m.exec(text)?.[1]);
  expect(resident).toBeGreaterThan(1024 * 1024);
  const openFds = Number(/^process_open_fds (\d+)$/m.exec(text)?.[1]);
  expect(openFds).toBeGreaterThan(3);
}, TEST_TIMEOUT_MS);

test("metrics address rejects writes", async () => {
  const { metricsPort } = await startBalancer();
  const body = JSON.stringify({ backends: [{ id: "x", target: "127.0.0.1:9" }] });

  const put = await viaMetrics(metricsPort, "/v1/backends", { method: "PUT", body, headers: { "content-type": "application/json" } });
  const get = await viaMetrics(metricsPort, "/v1/backends");

  expect(put.status).toBe(404);
  expect(((await put.json()) as { error: string }).error).toContain("serves only /metrics, /healthz and /readyz; the admin API (--admin) serves the rest");
  expect(get.status).toBe(404);
  const status = (await (await viaAdmin("/v1/backends")).json()) as { backends: { id: string }[] };
  expect(status.backends.map((backend) => backend.id)).toEqual(["a"]);
  expect(await (await viaMetrics(metricsPort, "/metrics")).text()).toContain('tinylb_provider_backends{provider="api"} 0\n');
}, TEST_TIMEOUT_MS);

test("POST /metrics gets 405 naming GET and HEAD", async () => {
  const { metricsPort } = await startBalancer();
  const expected = { error: "method POST is not allowed here; use GET or HEAD" };

  const fromMetrics = await viaMetrics(metricsPort, "/metrics", { method: "POST", body: "{}" });
  const fromAdmin = await viaAdmin("/metrics", { method: "POST", body: "{}" });

  expect(fromMetrics.status).toBe(405);
  expect(fromMetrics.headers.get("allow")).toBe("GET, HEAD");
  expect(await fromMetrics.json()).toEqual(expected);
  expect(fromAdmin.status).toBe(405);
  expect(fromAdmin.headers.get("allow")).toBe("GET, HEAD");
  expect(await fromAdmin.json()).toEqual(expected);
}, TEST_TIMEOUT_MS);

test("metrics address serves Host-less requests", async () => {
  const { tinylb, metricsPort } = await startBalancer();

  // HTTP/1.0 allows a request line with only a path and no Host header.
  const response = await rawHttpExchange({ kind: "tcp", host: "127.0.0.1", port: metricsPort }, "GET /healthz HTTP/1.0\r\n\r\n");

  expect(rawStatus(response)).toBe(200);
  expect(JSON.parse(rawBody(response))).toEqual({ status: "ok" });
  expect(tinylb.stderr).not.toContain("Error");
}, TEST_TIMEOUT_MS);

test("metrics address serves HEAD", async () => {
  const { metricsPort } = await startBalancer();

  const getLength = (await (await viaMetrics(metricsPort, "/metrics")).arrayBuffer()).byteLength;
  const head = await viaMetrics(metricsPort, "/metrics", { method: "HEAD" });

  expect(head.status).toBe(200);
  expect(head.headers.get("content-length")).toBe(String(getLength));
  expect(await head.text()).toBe("");
}, TEST_TIMEOUT_MS);

test("draining tinylb hands over its metrics address", async () => {
  const { tinylb, port, metricsPort } = await startBalancer(["--shutdown-grace", "30s"]);
  const client = await TestClient.connect(port);
  cleanup.push(() => client.socket.terminate());
  await waitFor("greeting", () => client.firstLine === "a");
  // Started while the metrics port is still bound, so that the kernel cannot give it that port.
  const backend = TestBackend.echo("b");
  cleanup.push(() => backend.stop());

  tinylb.signal("SIGTERM");
  await tinylb.waitForLog("metrics server stopped listening");
  const successor = TinylbProcess.start(["--listen", "127.0.0.1:0", "--backend", `b=${backend.target}`, "--admin", "off", "--metrics", `127.0.0.1:${metricsPort}`]);
  cleanup.push(() => successor[Symbol.asyncDispose]());
  await successor.waitForLog("tinylb started");
  const metrics = await (await viaMetrics(metricsPort, "/metrics")).text();

  expect(metrics).toContain('tinylb_backend_set_size 1\n');
  expect(metrics).toContain('tinylb_backend_connections_total{backend="b"} 0\n');
  expect(tinylb.process.exitCode).toBeNull();
  expect(await (await viaAdmin("/readyz")).json()).toEqual({ status: "draining", error: "tinylb is shutting down and accepts no new clients" });
  client.close();
  expect(await within("tinylb to exit", tinylb.process.exited, 15_000)).toBe(0);
}, TEST_TIMEOUT_MS);

test("busy metrics port exits 1", async () => {
  const busy = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  cleanup.push(() => busy.stop(true));

  const { exitCode, stderr } = await runTinylb(["--listen", "127.0.0.1:0", "--admin", "off", "--metrics", `127.0.0.1:${busy.port}`]);

  expect(exitCode).toBe(1);
  expect(stderr).toContain(`tinylb: metrics server listen on 127.0.0.1:${busy.port} failed: the address is already in use (EADDRINUSE)`);
  expect(stderr).toContain("pick another address with --metrics ADDR");
}, TEST_TIMEOUT_MS);

test.each([
  ["a Unix socket", ["--metrics", "unix:/run/tinylb/metrics.sock"], 'tinylb: --metrics: invalid metrics address "unix:/run/tinylb/metrics.sock": a Unix socket is not allowed'],
  ["a listen address", ["--metrics", "127.0.0.1:7443"], "tinylb: --metrics 127.0.0.1:7443 is also the --listen address; an address can be bound only once"],
  ["the admin address", ["--admin", "127.0.0.1:7444", "--metrics", "[::ffff:127.0.0.1]:7444"], "tinylb: --metrics [::ffff:127.0.0.1]:7444 is the same address as admin API 127.0.0.1:7444"],
])("metrics address on %s exits 2", async (_name, flags, message) => {
  const admin = flags.includes("--admin") ? [] : ["--admin", "off"];

  const { exitCode, stdout, stderr } = await runTinylb(["--listen", "127.0.0.1:7443", ...admin, ...flags]);

  expect(stderr).toStartWith(message);
  expect(stderr.trim().split("\n")).toHaveLength(1);
  expect(stdout).toBe("");
  expect(exitCode).toBe(2);
}, TEST_TIMEOUT_MS);

test("reload keeps the metrics address", async () => {
  const backend = TestBackend.echo("a");
  cleanup.push(() => backend.stop());
  const config = join(directory, "reload.yaml");
  const base = ["listen: 127.0.0.1:0", `backends: [{ id: a, target: "${backend.target}" }]`];
  writeFileSync(config, [...base, "metrics: 127.0.0.1:0", ""].join("\n"));
  await using tinylb = TinylbProcess.start(["--config", config, "--no-watch-config"]);
  await tinylb.waitForLog("tinylb started");
  const metricsPort = metricsPortOf(tinylb.stderr);

  writeFileSync(config, [...base, "metrics: off", ""].join("\n"));
  tinylb.signal("SIGHUP");
  await tinylb.waitForLog("settings changed in the config file need a restart");

  expect(tinylb.stderr).toContain('settings="metrics=127.0.0.1:0->off"');
  expect((await viaMetrics(metricsPort, "/healthz")).status).toBe(200);
}, TEST_TIMEOUT_MS);
