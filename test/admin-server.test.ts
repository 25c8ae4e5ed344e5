import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Address, parseAddress } from "../src/address.ts";
import { MAX_ADMIN_BODY_BYTES } from "../src/admin-request.ts";
import { AdminServer, checkAdminAddress } from "../src/admin-server.ts";
import { createBackend } from "../src/backend.ts";
import { BackendStates } from "../src/backend-states.ts";
import { collectStatus } from "../src/balancer-status.ts";
import { ConfigError } from "../src/config.ts";
import { AdminApiProvider } from "../src/providers/admin-api-provider.ts";
import { type AdminFixture, type AdminFixtureOptions, startAdminFixture } from "./support/admin-fixture.ts";
import { BalancerScenario } from "./support/balancer-scenario.ts";
import { rawBody, rawHttpExchange, rawStatus } from "./support/raw-http.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "tinylb-admin-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));

  return dir;
}

/** Starts a balancer with static backends (default "a"), the API provider and an admin server on `transport`. */
function startAdmin(transport: "unix" | "tcp", options: AdminFixtureOptions = {}): Promise<AdminFixture> {
  return startAdminFixture(transport, cleanup, options);
}

function putJson(body: unknown): RequestInit {
  return { method: "PUT", body: typeof body === "string" ? body : JSON.stringify(body), headers: { "content-type": "application/json" } };
}

describe.each(["unix", "tcp"] as const)("admin API over %s", (transport) => {
  test("healthz returns ok", async () => {
    const { request } = await startAdmin(transport);

    const response = await request("/healthz");

    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: "ok" });
  });

  test("readyz follows the set size", async () => {
    const { request, api } = await startAdmin(transport, { staticIds: [] });

    const empty = await request("/readyz");
    expect(empty.status).toBe(503);
    expect(await empty.json()).toEqual({ status: "not ready", error: "the backend set is empty" });

    api.put(createBackend("x", "127.0.0.1:9"));
    const ready = await request("/readyz");
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: "ready", backends: 1 });
  });

  test("readyz answers 503 draining during shutdown", async () => {
    const { request, scenario } = await startAdmin(transport);
    const clients = await scenario.connectEach(["a"]);

    const stopped = scenario.server.shutdown(30_000);
    const draining = await request("/readyz");
    expect(draining.status).toBe(503);
    expect(await draining.json()).toEqual({ status: "draining", error: "tinylb is shutting down and accepts no new clients" });
    const healthz = await request("/healthz");
    expect(healthz.status).toBe(200);

    clients.get("a")!.close();
    await stopped;
  });

  test.each(["/healthz", "/readyz", "/metrics", "/v1/backends", "/v1/backends/a", "/v1/backends/missing", "/v1/backends/a/state"])("HEAD %s answers like GET without a body", async (path) => {
    const { request } = await startAdmin(transport);

    const get = await request(path);
    const getBody = await get.arrayBuffer();
    const head = await request(path, { method: "HEAD" });

    expect(head.status).toBe(get.status);
    expect(head.headers.get("content-type")).toBe(get.headers.get("content-type"));
    if (path === "/metrics") {
      // Process metrics such as CPU seconds and resident memory change between the two
      // requests, and a value can gain or lose digits, so the lengths may differ a little.
      expect(Math.abs(Number(head.headers.get("content-length")) - getBody.byteLength)).toBeLessThanOrEqual(32);
    } else {
      expect(head.headers.get("content-length")).toBe(String(getBody.byteLength));
    }
    expect(await head.text()).toBe("");
  });

  test("raw HEAD response has no body", async () => {
    const { admin, request } = await startAdmin(transport);
    const getLength = (await (await request("/readyz")).arrayBuffer()).byteLength;

    // fetch hides a body sent after a HEAD response, so this reads the raw bytes until the server closes.
    const received = await rawHttpExchange(admin.address, "HEAD /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");

    expect(received.startsWith("HTTP/1.1 200 ")).toBe(true);
    expect(received.toLowerCase()).toContain(`\r\ncontent-length: ${getLength}\r\n`);
    expect(received.endsWith("\r\n\r\n")).toBe(true);
  });

  test("Host-less request gets JSON", async () => {
    const { admin, scenario } = await startAdmin(transport);

    // HTTP/1.0 allows a request line with only a path and no Host header.
    const found = await rawHttpExchange(admin.address, "GET /healthz HTTP/1.0\r\n\r\n");
    const missing = await rawHttpExchange(admin.address, "GET /nope?x=1 HTTP/1.0\r\n\r\n");

    expect(rawStatus(found)).toBe(200);
    expect(JSON.parse(rawBody(found))).toEqual({ status: "ok" });
    expect(rawStatus(missing)).toBe(404);
    expect(JSON.parse(rawBody(missing)).error).toContain("/nope");
    expect(scenario.log.messages()).not.toContain("invariant violated: HTTP request failed");
  });

  test("body cut short logs no error", async () => {
    const { admin, scenario } = await startAdmin(transport);

    // The client sends 5 of 100 body bytes, then closes its side after 500 ms.
    const response = await rawHttpExchange(admin.address, 'PUT /v1/backends/q HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"tar', 500);
    await waitFor("the abandoned request's debug line", () => scenario.log.messages().includes("HTTP request failed"));

    expect(response).toBe("");
    expect(scenario.log.messages().filter((message) => message.startsWith("invariant violated"))).toEqual([]);
    expect(scenario.log.withMessage("HTTP request failed")[0]).toMatchObject({ level: "debug", status: 400 });
  });

  test.each(["[::1", "x:notaport"])("malformed Host %s keeps the path", async (host) => {
    const { admin, scenario } = await startAdmin(transport);

    const response = await rawHttpExchange(admin.address, `GET /healthz HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);

    expect(rawStatus(response)).toBe(200);
    expect(JSON.parse(rawBody(response))).toEqual({ status: "ok" });
    expect(scenario.log.messages()).not.toContain("invariant violated: HTTP request failed");
  });

  test("GET backends lists traffic per backend", async () => {
    const { request, scenario } = await startAdmin(transport);
    const clients = await scenario.connectEach(["a"]);
    await BalancerScenario.echo(clients.get("a")!, "hello");

    const response = await request("/v1/backends");
    const body = (await response.json()) as { backends: Record<string, unknown>[]; listeners: string[] };

    expect(response.status).toBe(200);
    expect(body.listeners).toEqual([`127.0.0.1:${scenario.port}`]);
    expect(body.backends).toEqual([
      { id: "a", target: scenario.target("a"), provider: "static", active: 1, total: 1, bytesToBackend: 6, bytesToClient: 8, dialFailures: 0, health: "healthy", healthy: true, healthCause: "", probed: false, disabled: false, proxyProtocol: "off", slowStartMs: 0 },
    ]);
  });

  test("PUT backends replaces the API set", async () => {
    const { request, scenario, api } = await startAdmin(transport);

    const response = await request("/v1/backends", putJson({ backends: [{ id: "b", target: scenario.target("b") }, { id: "c", target: scenario.target("c") }] }));

    expect(response.status).toBe(200);
    expect(((await response.json()) as { backends: unknown[] }).backends).toEqual([
      { id: "b", target: scenario.target("b") },
      { id: "c", target: scenario.target("c") },
    ]);
    expect(scenario.running).toBe(`a=${scenario.target("a")},b=${scenario.target("b")},c=${scenario.target("c")}`);
    expect(scenario.union.providerOf("b")).toBe("api");

    const clients = await scenario.connectEach(["b", "c"]);
    await request("/v1/backends", putJson({ backends: [{ id: "c", target: scenario.target("c") }] }));
    await waitFor("client of b to close", () => clients.get("b")!.closed);
    await BalancerScenario.echo(clients.get("c")!, "c stays");
    expect(api.set.size).toBe(1);
  });

  test("PUT and DELETE one backend", async () => {
    const { request, scenario } = await startAdmin(transport);

    const created = await request("/v1/backends/b", putJson({ target: scenario.target("b") }));
    expect(created.status).toBe(201);
    expect(await created.json()).toEqual({ id: "b", target: scenario.target("b"), previousTarget: null, servedBy: { provider: "api", target: scenario.target("b") } });
    const again = await request("/v1/backends/b", putJson({ id: "b", target: scenario.target("b") }));
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ id: "b", target: scenario.target("b"), previousTarget: scenario.target("b"), servedBy: { provider: "api", target: scenario.target("b") } });

    const clients = await scenario.connectEach(["a", "b"]);
    const retargeted = await request("/v1/backends/b", putJson({ target: scenario.target("c") }));
    expect(retargeted.status).toBe(200);
    expect(await retargeted.json()).toEqual({ id: "b", target: scenario.target("c"), previousTarget: scenario.target("b"), servedBy: { provider: "api", target: scenario.target("c") } });
    await waitFor("old connection of b to close", () => clients.get("b")!.closed);
    await BalancerScenario.echo(clients.get("a")!, "a stays");

    const deleted = await request("/v1/backends/b", { method: "DELETE" });
    expect(deleted.status).toBe(200);
    expect(await deleted.json()).toEqual({ id: "b", target: scenario.target("c"), servedBy: null });
    expect(scenario.running).toBe(`a=${scenario.target("a")}`);

    const single = await request("/v1/backends/a");
    expect(single.status).toBe(200);
    expect(((await single.json()) as { provider: string }).provider).toBe("static");
  });

  test("metrics use the Prometheus text format", async () => {
    const { request, scenario } = await startAdmin(transport);
    const clients = await scenario.connectEach(["a"]);
    await BalancerScenario.echo(clients.get("a")!, "hi");

    const response = await request("/metrics");
    const text = await response.text();

    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(text).toContain("# TYPE tinylb_backend_connections_active gauge\n");
    expect(text).toContain('tinylb_backend_connections_active{backend="a"} 1\n');
    expect(text).toContain('tinylb_backend_connections_total{backend="a"} 1\n');
    expect(text).toContain('tinylb_backend_bytes_total{backend="a",direction="to_backend"} 3\n');
    expect(text).toContain('tinylb_backend_bytes_total{backend="a",direction="to_client"} 5\n');
    expect(text).toContain('tinylb_backend_dial_failures_total{backend="a"} 0\n');
    expect(text).toContain("tinylb_backend_set_changes_total 1\n");
    expect(text).toContain("tinylb_config_reloads_total 0\n");
    expect(text).toContain("tinylb_config_reload_failures_total 0\n");
    expect(text).toContain('tinylb_provider_backends{provider="static"} 1\n');
  });

  const badRequests: [string, string, RequestInit, number, string | undefined, string][] = [
    ["malformed JSON", "/v1/backends", putJson("{not json"), 400, "(body)", "invalid JSON in request body"],
    ["a bare word", "/v1/backends", putJson("notjson"), 400, "(body)", "invalid JSON in request body at character 1: Unexpected notjson, after `notjson`"],
    ["truncated JSON", "/v1/backends", putJson('{"backends":[{"id":"x"'), 400, "(body)", 'invalid JSON in request body at its end: Expected "}" but found end of file'],
    ["missing comma", "/v1/backends", putJson('{"backends":[{"id":"x" "target":"127.0.0.1:1"}]}'), 400, "(body)", 'at character 24: Expected "," but found ""target"", after `..."backends":[{"id":"x" "target"`'],
    ["missing comma on line 3", "/v1/backends", putJson('{\n  "backends": [\n    {"id": "x" "target": "127.0.0.1:1"}\n  ]\n}'), 400, "(body)", "at line 3, column 16: "],
    ["trailing comma", "/v1/backends", putJson('{"backends":[],}'), 400, "(body)", "invalid JSON in request body at character 15: a trailing comma, which JSON does not allow, after `{\"backends\":[],`"],
    ["a comment", "/v1/backends", putJson('{"backends":[]} // none'), 400, "(body)", "look for what JavaScript allows and JSON does not, such as a comment"],
    ["tab in a string", "/v1/backends/x", putJson('{"id":"a\tb","target":"127.0.0.1:1"}'), 400, "(body)", "invalid JSON in request body at character 9: unescaped tab (U+0009) in a string, after `{\"id\":\"a`; JSON requires control characters in strings to be escaped, so write it as \\t"],
    ["control character after a comment", "/v1/backends", putJson('{"backends":[ /* one */ {"id":"a\u0001"}]}'), 400, "(body)", "at character 33: unescaped control character (U+0001) in a string, after `...backends\":[ /* one */ {\"id\":\"a`;"],
    ["newline in a string", "/v1/backends", putJson('{\n  "backends": [{"id": "a\n'), 400, "(body)", 'at line 2, column 25: unescaped newline (U+000A) in a string, after `{\\n  "backends": [{"id": "a`; JSON requires control characters in strings to be escaped, so write it as \\n, or close the string with " before the line break'],
    ["tab after an earlier error", "/v1/backends", putJson('{"backends": x, "id":"a\tb"}'), 400, "(body)", "at character 14: Unexpected x, after `{\"backends\": x`"],
    ["empty body", "/v1/backends", putJson(""), 400, "(body)", "empty"],
    ["wrong top-level type", "/v1/backends", putJson([1, 2]), 400, "(body)", "expected an object, got a list"],
    ["backends not an array", "/v1/backends", putJson({ backends: "a" }), 400, "backends", "expected a list, got a string"],
    ["entry as a flag string", "/v1/backends", putJson({ backends: ["x=127.0.0.1:1"] }), 400, "backends[0]", 'expected an object such as {"id": "x", "target": "127.0.0.1:1"}'],
    ["backends as a mapping", "/v1/backends", putJson({ backends: { x: "127.0.0.1:1" } }), 400, "backends", 'expected a list of backends such as [{"id": "x", "target": "127.0.0.1:1"}]'],
    ["target beside ids", "/v1/backends", putJson({ backends: { target: "127.0.0.1:1", x: "127.0.0.1:2" } }), 400, "backends", 'expected a list of backends such as [{"id": "api-1", "target": "127.0.0.1:1"}, {"id": "x", "target": "127.0.0.1:2"}]'],
    ["id not a string", "/v1/backends", putJson({ backends: [{ id: 7, target: "127.0.0.1:1" }] }), 400, "backends[0].id", "expected a string, got a number"],
    ["invalid target", "/v1/backends", putJson({ backends: [{ id: "x", target: "nowhere" }] }), 400, "backends[0].target", "invalid address"],
    ["relative Unix target", "/v1/backends/x", putJson({ target: "unix:app.sock" }), 400, "target", 'invalid address "unix:app.sock": the socket path "app.sock" is relative'],
    ["long Unix target", "/v1/backends/x", putJson({ target: `unix:/tmp/${"a".repeat(290)}.sock` }), 400, "target", "the path has 300 bytes, more than the 107 a Unix socket path can have; use a shorter path"],
    ["unspecified target", "/v1/backends", putJson({ backends: [{ id: "x", target: "0.0.0.0:80" }] }), 400, "backends[0].target", "0.0.0.0 is the unspecified address, which only a listener can use"],
    ["invalid id", "/v1/backends", putJson({ backends: [{ id: "-x", target: "127.0.0.1:1" }] }), 400, "backends[0].id", "invalid backend id"],
    ["duplicate id", "/v1/backends", putJson({ backends: [{ id: "x", target: "127.0.0.1:1" }, { id: "x", target: "127.0.0.1:2" }] }), 400, "backends[1].id", "duplicate id"],
    ["unknown key", "/v1/backends", putJson({ backends: [], extra: true }), 400, "(body)", 'invalid request body: unknown key "extra"; valid keys: backends'],
    ["duplicate key", "/v1/backends", putJson('{"backends":[{"id":"x","target":"127.0.0.1:1"}],"backends":[]}'), 400, "(body)", 'duplicate key "backends", already set at line 1'],
    ["oversized body", "/v1/backends", putJson(`{"backends":[],"pad":"${"x".repeat(MAX_ADMIN_BODY_BYTES)}"}`), 413, "(body)", "request body too large"],
    ["target missing", "/v1/backends/x", putJson({}), 400, "target", "target: missing"],
    ["target wrong type", "/v1/backends/x", putJson({ target: 80 }), 400, "target", "expected a string, got a number"],
    ["misspelt target", "/v1/backends/x", putJson({ targt: "127.0.0.1:1" }), 400, "target", 'target: missing; invalid request body: unknown key "targt" (did you mean "target"?)'],
    ["body id mismatch", "/v1/backends/x", putJson({ id: "y", target: "127.0.0.1:1" }), 400, "id", "does not match"],
    ["invalid id in path", "/v1/backends/%2Dx", putJson({ target: "127.0.0.1:1" }), 400, "id", "invalid backend id"],
    ["static id retargeted", "/v1/backends/a", putJson({ target: "127.0.0.1:1" }), 409, "id", 'comes from provider "static"'],
    ["static id in a set", "/v1/backends", putJson({ backends: [{ id: "x", target: "127.0.0.1:2" }, { id: "a", target: "127.0.0.1:1" }] }), 409, "backends[1].id", 'backend "a" comes from provider "static"'],
    ["unknown id deleted", "/v1/backends/nope", { method: "DELETE" }, 404, "id", 'backend "nope" not found'],
    ["static id deleted", "/v1/backends/a", { method: "DELETE" }, 409, "id", 'comes from provider "static"; only backends set through the admin API can be deleted here, so remove its --backend flag and restart'],
    ["unknown id read", "/v1/backends/nope", {}, 404, "id", "not found in the running set"],
    ["POST to backends", "/v1/backends", { method: "POST", body: "{}" }, 405, undefined, "method POST is not allowed here; use GET, HEAD or PUT"],
    ["DELETE on healthz", "/healthz", { method: "DELETE" }, 405, undefined, "method DELETE is not allowed here; use GET or HEAD"],
    ["PUT on metrics", "/metrics", { method: "PUT", body: "x" }, 405, undefined, "method PUT is not allowed here; use GET or HEAD"],
    ["PATCH on one backend", "/v1/backends/x", { method: "PATCH", body: "{}" }, 405, undefined, "method PATCH is not allowed here; use GET, HEAD, PUT or DELETE"],
    ["POST on a backend's state", "/v1/backends/a/state", { method: "POST", body: "{}" }, 405, undefined, "method POST is not allowed here; use GET, HEAD or PUT"],
    ["unknown path", "/v2/things", {}, 404, undefined, "no route for /v2/things; see /v1/backends, /v1/backends/{id}, /v1/backends/{id}/state, /v1/config, /healthz, /readyz and /metrics"],
  ];

  test("names every bad entry of a set", async () => {
    const { request, api } = await startAdmin(transport);
    const entries = [
      { id: "x", target: "nowhere" },
      { id: "y", target: "127.0.0.1:2" },
      { id: "y", target: "127.0.0.1:3" },
      { id: "-z", target: "127.0.0.1:4" },
      { id: "w" },
    ];

    const response = await request("/v1/backends", putJson({ backends: entries }));
    const body = (await response.json()) as { error: string; field: string };

    expect(response.status).toBe(400);
    expect(body.field).toBe("backends[0].target");
    expect(body.error).toContain('backends[0].target: invalid address "nowhere"');
    expect(body.error).toContain('backends[2].id: duplicate id "y", already used by backends[1]');
    expect(body.error).toContain('backends[3].id: invalid backend id "-z"');
    // A missing key is named in the same response as the bad values.
    expect(body.error).toContain("backends[4].target: missing");
    expect(api.set.size).toBe(0);
  });

  test("names at most five bad entries", async () => {
    const { request } = await startAdmin(transport);
    const entries = Array.from({ length: 8 }, (_, index) => ({ id: `b${index}`, target: `nowhere-${index}` }));

    const response = await request("/v1/backends", putJson({ backends: entries }));
    const { error } = (await response.json()) as { error: string };

    expect(response.status).toBe(400);
    expect(error).toContain("backends[4].target");
    expect(error).not.toContain("backends[5]");
    expect(error).toEndWith("; and 3 more problems");
  });

  test("rejects a target that is its own listener", async () => {
    const { request, scenario, api } = await startAdmin(transport);
    const own = `127.0.0.1:${scenario.port}`;

    const single = await request("/v1/backends/self", putJson({ target: own }));
    const all = await request("/v1/backends", putJson({ backends: [{ id: "b", target: scenario.target("b") }, { id: "self", target: `localhost:${scenario.port}` }] }));

    expect(single.status).toBe(400);
    expect(await single.json()).toEqual({
      error: `backend "self" has target ${own}, which is tinylb's own listen address ${own}, so its connections would loop back into tinylb; use the backend's own address`,
      field: "target",
    });
    expect(all.status).toBe(400);
    expect(((await all.json()) as { field: string }).field).toBe("backends[1].target");
    expect(api.set.size).toBe(0);
  });

  test.each(badRequests)("rejects %s", async (_name, path, init, status, field, problem) => {
    const { request, scenario, api } = await startAdmin(transport);
    const setBefore = scenario.running;
    const changesBefore = scenario.server.stats.setChanges;

    const response = await request(path, init);
    const body = (await response.json()) as { error: string; field?: string };

    expect(response.status).toBe(status);
    expect(response.headers.get("content-type")).toBe("application/json");
    expect(body.field).toBe(field);
    expect(body.error).toContain(problem);
    expect(scenario.running).toBe(setBefore);
    expect(scenario.server.stats.setChanges).toBe(changesBefore);
    expect(api.set.size).toBe(0);
    if (status === 405) {
      expect(response.headers.get("allow")).toContain("GET");
    }
  });

  test.each([
    ["/v1/backends", "GET, HEAD, PUT", "GET, HEAD or PUT"],
    ["/v1/backends/a", "GET, HEAD, PUT, DELETE", "GET, HEAD, PUT or DELETE"],
    ["/v1/backends/a/state", "GET, HEAD, PUT", "GET, HEAD or PUT"],
    ["/healthz", "GET, HEAD", "GET or HEAD"],
    ["/readyz", "GET, HEAD", "GET or HEAD"],
    ["/metrics", "GET, HEAD", "GET or HEAD"],
  ])("405 on %s lists %s", async (path, allow, choices) => {
    const { request } = await startAdmin(transport);

    const response = await request(path, { method: "PATCH", body: "{}" });

    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe(allow);
    expect(await response.json()).toEqual({ error: `method PATCH is not allowed here; use ${choices}` });
  });
});

test("admin Unix socket has mode 0600", async () => {
  const { admin } = await startAdmin("unix");
  const path = (admin.address as { path: string }).path;

  expect(statSync(path).mode & 0o777).toBe(0o600);
  expect(statSync(path).isSocket()).toBe(true);
});

test("admin API stop removes its socket", async () => {
  const { admin } = await startAdmin("unix");
  const path = (admin.address as { path: string }).path;

  await admin.stop();

  expect(() => statSync(path)).toThrow();
});

test("admin API requires the bearer token", async () => {
  const tokenFile = join(tempDir(), "token");
  const token = "s3cret-token-0123456789";
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  const { request, scenario } = await startAdmin("tcp", { tokenFile });

  const missing = await request("/v1/backends");
  const wrong = await request("/v1/backends", { headers: { authorization: "Bearer not-the-token" } });
  const right = await request("/v1/backends", { headers: { authorization: `Bearer ${token}` } });

  expect(missing.status).toBe(401);
  expect(missing.headers.get("www-authenticate")).toBe("Bearer");
  expect(await missing.json()).toEqual({ error: "missing or invalid bearer token" });
  expect(wrong.status).toBe(401);
  expect(right.status).toBe(200);
  expect(JSON.stringify(scenario.log.records)).not.toContain(token);
});

test("Host-less request without token is 401", async () => {
  const tokenFile = join(tempDir(), "token");
  writeFileSync(tokenFile, "s3cret-token-0123456789\n", { mode: 0o600 });
  const { admin, scenario } = await startAdmin("tcp", { tokenFile });

  const response = await rawHttpExchange(admin.address, "GET /v1/backends HTTP/1.0\r\n\r\n");

  expect(rawStatus(response)).toBe(401);
  expect(JSON.parse(rawBody(response))).toEqual({ error: "missing or invalid bearer token" });
  expect(scenario.log.withMessage("admin request rejected: missing or invalid bearer token")[0]?.path).toBe("/v1/backends");
});

test.each([
  ["0.0.0.0:9000", false, undefined, "pass --admin-allow-public and --admin-token-file FILE"],
  ["[::]:9000", false, "/etc/token", "it is not a loopback address"],
  ["192.0.2.10:9000", true, undefined, "needs a bearer token; pass --admin-token-file FILE"],
] as const)("admin address %s is refused", (text, allowPublic, tokenFile, problem) => {
  expect(() => checkAdminAddress(parseAddress(text), allowPublic, tokenFile)).toThrow(ConfigError);
  expect(() => checkAdminAddress(parseAddress(text), allowPublic, tokenFile)).toThrow(problem);
});

test.each(["127.0.0.1:0", "[::1]:0", "localhost:0", "unix:/run/tinylb/admin.sock"])("admin address %s is allowed", (text) => {
  expect(() => checkAdminAddress(parseAddress(text, true), false, undefined)).not.toThrow();
});

test("AdminServer start refuses a public address before binding", async () => {
  const scenario = new BalancerScenario();
  cleanup.push(() => scenario.close());
  const api = new AdminApiProvider();
  await scenario.start(api);

  // Only the refusal is exercised: the check runs before any bind, so nothing listens on 0.0.0.0.
  const start = AdminServer.start({
    address: { kind: "tcp", host: "0.0.0.0", port: 0 },
    context: { api, states: new BackendStates(scenario.server), union: scenario.union, status: () => collectStatus(scenario.server, scenario.union), metrics: () => "" },
  });

  await expect(start).rejects.toThrow("admin API address 0.0.0.0:0 rejected");
});

/** Starts an admin server on `address` over a balancer with only the API provider. */
async function startAdminOn(address: Address): Promise<AdminServer> {
  const scenario = new BalancerScenario();
  cleanup.push(() => scenario.close());
  const api = new AdminApiProvider();
  await scenario.start(api);

  return AdminServer.start({
    address,
    context: { api, states: new BackendStates(scenario.server), union: scenario.union, status: () => collectStatus(scenario.server, scenario.union), metrics: () => "" },
  });
}

test("admin API on a busy TCP port names the cause", async () => {
  const busy = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("busy") });
  cleanup.push(() => busy.stop(true));

  const start = startAdminOn({ kind: "tcp", host: "127.0.0.1", port: busy.port! });

  await expect(start).rejects.toThrow(`admin API listen on 127.0.0.1:${busy.port} failed: the address is already in use (EADDRINUSE)`);
});

test("admin socket through a file names it", async () => {
  const file = join(tempDir(), "file");
  writeFileSync(file, "");

  const start = startAdminOn({ kind: "unix", path: join(file, "admin.sock") });

  await expect(start).rejects.toThrow(`admin API listen on unix:${file}/admin.sock failed: ${file} is a file, not a folder; pick another path (ENOTDIR)`);
});

test("admin socket of a draining tinylb is taken over", async () => {
  const scenario = new BalancerScenario();
  cleanup.push(() => scenario.close());
  const api = new AdminApiProvider();
  await scenario.start(api);
  const path = join(tempDir(), "admin.sock");
  let draining = false;
  const context = { api, states: new BackendStates(scenario.server), union: scenario.union, status: () => collectStatus(scenario.server, scenario.union), metrics: () => "", shuttingDown: () => draining };
  const old = await AdminServer.start({ address: { kind: "unix", path }, context });
  cleanup.push(() => old.stop());

  // A running tinylb keeps its path.
  await expect(AdminServer.start({ address: { kind: "unix", path }, context: { ...context, shuttingDown: () => false } })).rejects.toThrow("a listener already accepts on it");

  draining = true;
  const successor = await AdminServer.start({ address: { kind: "unix", path }, context: { ...context, shuttingDown: () => false } });
  cleanup.push(() => successor.stop());
  const fresh = { unix: path, keepalive: false, headers: { connection: "close" } } as RequestInit;
  // The successor serves the path: its set is empty, and it is not draining.
  expect(await (await fetch("http://localhost/readyz", fresh)).json()).toMatchObject({ status: "not ready" });
  await old.stop();

  expect(statSync(path).isSocket()).toBe(true);
  expect(statSync(path).mode & 0o777).toBe(0o600);
  expect(await (await fetch("http://localhost/healthz", fresh)).json()).toEqual({ status: "ok" });
});
