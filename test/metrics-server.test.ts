import { afterEach, expect, test } from "bun:test";
import { AdminServer } from "../src/admin-server.ts";
import { createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import { BackendStates } from "../src/backend-states.ts";
import { collectStatus } from "../src/balancer-status.ts";
import { HttpServer } from "../src/http-server.ts";
import { ListenError } from "../src/listener.ts";
import { renderMetrics } from "../src/metrics.ts";
import { MetricsServer } from "../src/metrics-server.ts";
import { AdminApiProvider } from "../src/providers/admin-api-provider.ts";
import { StaticProvider } from "../src/providers/static-provider.ts";
import { BalancerScenario } from "./support/balancer-scenario.ts";
import { LogLines } from "./support/log-lines.ts";
import { withoutProcessSamples } from "./support/process-samples.ts";
import { rawBody, rawHttpExchange, rawStatus } from "./support/raw-http.ts";

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

type Request = (path: string, init?: RequestInit) => Promise<Response>;

interface MetricsFixture {
  scenario: BalancerScenario;
  api: AdminApiProvider;
  metrics: MetricsServer;
  /** Sends a request to the metrics server. */
  request: Request;
  /** Sends a request to an admin API on loopback TCP over the same balancer. */
  admin: Request;
}

/** Starts a balancer with the static backend "a", the API provider, an admin API and a metrics server, both on 127.0.0.1 port 0. */
async function startMetrics(): Promise<MetricsFixture> {
  const scenario = new BalancerScenario();
  cleanup.push(() => scenario.close());
  scenario.startBackends(["a"]);
  const api = new AdminApiProvider();
  await scenario.start(new StaticProvider(new BackendSet([createBackend("a", scenario.target("a"))])), api);

  const readOnly = {
    union: scenario.union,
    status: () => collectStatus(scenario.server, scenario.union),
    metrics: () => renderMetrics({ server: scenario.server, union: scenario.union }),
    shuttingDown: () => scenario.server.shuttingDown,
  };
  const metrics = await MetricsServer.start({ address: { kind: "tcp", host: "127.0.0.1", port: 0 }, context: readOnly, logger: scenario.log.logger });
  cleanup.push(() => metrics.stop());
  const admin = await AdminServer.start({ address: { kind: "tcp", host: "127.0.0.1", port: 0 }, context: { ...readOnly, api, states: new BackendStates(scenario.server) }, logger: scenario.log.logger });
  cleanup.push(() => admin.stop());

  const requestTo = (port: number): Request => (path, init = {}) => fetch(`http://127.0.0.1:${port}${path}`, init);

  return { scenario, api, metrics, request: requestTo(metrics.address.port), admin: requestTo((admin.address as { port: number }).port) };
}

test.each(["/metrics", "/healthz", "/readyz"])("MetricsServer serves %s as admin does", async (path) => {
  const { request, admin } = await startMetrics();

  const fromAdmin = await admin(path);
  const adminBody = await fromAdmin.text();
  const fromMetrics = await request(path);

  expect(fromMetrics.status).toBe(fromAdmin.status);
  expect(fromMetrics.headers.get("content-type")).toBe(fromAdmin.headers.get("content-type"));
  expect(withoutProcessSamples(await fromMetrics.text())).toBe(withoutProcessSamples(adminBody));
});

test("MetricsServer counts traffic", async () => {
  const { request, scenario } = await startMetrics();
  const clients = await scenario.connectEach(["a"]);
  await BalancerScenario.echo(clients.get("a")!, "hi");

  const text = await (await request("/metrics")).text();

  expect(text).toContain('tinylb_backend_connections_active{backend="a"} 1\n');
  expect(text).toContain('tinylb_backend_bytes_total{backend="a",direction="to_backend"} 3\n');
});

test.each(["/metrics", "/healthz", "/readyz"])("MetricsServer HEAD %s has no body", async (path) => {
  const { request } = await startMetrics();

  const get = await request(path);
  const getBody = await get.arrayBuffer();
  const head = await request(path, { method: "HEAD" });

  expect(head.status).toBe(200);
  expect(head.headers.get("content-type")).toBe(get.headers.get("content-type"));
  if (path === "/metrics") {
    // The process metrics (CPU seconds, resident memory) may gain or lose digits between the two requests.
    expect(Math.abs(Number(head.headers.get("content-length")) - getBody.byteLength)).toBeLessThanOrEqual(32);
  } else {
    expect(head.headers.get("content-length")).toBe(String(getBody.byteLength));
  }
  expect(await head.text()).toBe("");
});

test.each([
  ["GET", "/v1/backends"],
  ["PUT", "/v1/backends"],
  ["GET", "/v1/backends/a"],
  ["PUT", "/v1/backends/b"],
  ["DELETE", "/v1/backends/a"],
  ["GET", "/"],
  ["GET", "/metrics/"],
])("MetricsServer answers %s %s with 404", async (method, path) => {
  const { request, scenario, api } = await startMetrics();
  const body = method === "PUT" ? JSON.stringify({ backends: [{ id: "b", target: "127.0.0.1:9" }], target: "127.0.0.1:9" }) : undefined;

  const response = await request(path, { method, body });

  expect(response.status).toBe(404);
  expect(response.headers.get("content-type")).toBe("application/json");
  const error = ((await response.json()) as { error: string }).error;
  expect(error).toContain(`no route for ${path} on the metrics server`);
  expect(error).toContain("/metrics, /healthz and /readyz");
  expect(error).toContain("the admin API (--admin) serves the rest");
  expect(api.set.size).toBe(0);
  expect(scenario.server.set.backends.map((backend) => backend.id)).toEqual(["a"]);
});

test("MetricsServer serves Host-less requests", async () => {
  const { metrics, scenario } = await startMetrics();

  // HTTP/1.0 allows a request line with only a path and no Host header.
  const response = await rawHttpExchange(metrics.address, "GET /readyz HTTP/1.0\r\n\r\n");

  expect(rawStatus(response)).toBe(200);
  expect(JSON.parse(rawBody(response)).status).toBe("ready");
  expect(scenario.log.messages()).not.toContain("invariant violated: HTTP request failed");
});

test("handler error is a JSON 500", async () => {
  const log = new LogLines();
  const http = await HttpServer.listen({ host: "127.0.0.1", port: 0 }, { subject: "test server", maxConnections: 8, fetch: () => Promise.reject(new Error("handler bug")), log: log.logger });
  cleanup.push(() => http.stop());

  const responses = [await fetch(`http://127.0.0.1:${http.port}/`), await fetch(`http://127.0.0.1:${http.port}/`)];

  for (const response of responses) {
    expect(response.status).toBe(500);
    expect(await response.json()).toEqual({ error: "internal error; see the tinylb log" });
  }
  // The second failure falls inside the 10 s rate limit.
  expect(log.withMessage("invariant violated: HTTP request failed")).toHaveLength(1);
});

test("MetricsServer HEAD of another path is 404", async () => {
  const { request } = await startMetrics();

  const head = await request("/v1/backends", { method: "HEAD" });

  expect(head.status).toBe(404);
  expect(await head.text()).toBe("");
});

test.each(["PUT", "POST", "DELETE"])("MetricsServer rejects %s /metrics with 405", async (method) => {
  const { request, admin } = await startMetrics();

  const fromAdmin = await admin("/metrics", { method, body: "{}" });
  const fromMetrics = await request("/metrics", { method, body: "{}" });
  const body = await fromMetrics.json();

  expect(fromMetrics.status).toBe(405);
  expect(fromMetrics.headers.get("allow")).toBe("GET, HEAD");
  expect(fromMetrics.headers.get("allow")).toBe(fromAdmin.headers.get("allow"));
  expect(body).toEqual({ error: `method ${method} is not allowed here; use GET or HEAD` });
  expect(body).toEqual(await fromAdmin.json());
});

test.each(["/healthz", "/readyz"])("MetricsServer rejects POST %s with 405", async (path) => {
  const { request } = await startMetrics();

  const response = await request(path, { method: "POST", body: "{}" });

  expect(response.status).toBe(405);
  expect(response.headers.get("allow")).toBe("GET, HEAD");
  expect(await response.json()).toEqual({ error: "method POST is not allowed here; use GET or HEAD" });
});

test("MetricsServer readyz is 503 while draining", async () => {
  const { request, scenario } = await startMetrics();
  const clients = await scenario.connectEach(["a"]);

  const stopped = scenario.server.shutdown(30_000);
  const draining = await request("/readyz");

  expect(draining.status).toBe(503);
  expect(await draining.json()).toEqual({ status: "draining", error: "tinylb is shutting down and accepts no new clients" });
  expect((await request("/healthz")).status).toBe(200);
  clients.get("a")!.close();
  await stopped;
});

test("MetricsServer stop closes the port", async () => {
  const { request, metrics } = await startMetrics();
  expect((await request("/healthz")).status).toBe(200);

  await metrics.stop();

  await expect(request("/healthz")).rejects.toThrow();
});

test("MetricsServer busy port names the flag", async () => {
  const busy = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  cleanup.push(() => busy.stop(true));
  const scenario = new BalancerScenario();
  cleanup.push(() => scenario.close());
  const context = { union: scenario.union, status: () => collectStatus(scenario.server, scenario.union), metrics: () => "" };

  const start = (): Promise<MetricsServer> => MetricsServer.start({ address: { kind: "tcp", host: "127.0.0.1", port: busy.port }, context });

  await expect(start()).rejects.toThrow(ListenError);
  await expect(start()).rejects.toThrow(`metrics server listen on 127.0.0.1:${busy.port} failed: the address is already in use (EADDRINUSE)`);
  await expect(start()).rejects.toThrow("pick another address with --metrics ADDR");
});

test("MetricsServer logs its address", async () => {
  const { scenario, metrics } = await startMetrics();

  expect(scenario.log.withMessage("metrics server listening")).toEqual([expect.objectContaining({ component: "metrics", listener: `127.0.0.1:${metrics.address.port}` })]);
});
