import { afterEach, expect, test } from "bun:test";
import { createBackend } from "../src/backend.ts";
import type { BalancerStatus } from "../src/balancer-status.ts";
import { type AdminFixture, startAdminFixture } from "./support/admin-fixture.ts";
import { BalancerScenario } from "./support/balancer-scenario.ts";
import { TestClient } from "./support/backends.ts";
import { StalledListener } from "./support/stalled-listener.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

function start(staticIds: string[]): Promise<AdminFixture> {
  return startAdminFixture("unix", cleanup, { staticIds });
}

/** Sends `PUT /v1/backends/{id}/state` and returns the status and the JSON body. */
async function putState(fixture: AdminFixture, id: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fixture.request(`/v1/backends/${id}/state`, { method: "PUT", body: JSON.stringify(body) });

  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function getState(fixture: AdminFixture, id: string): Promise<unknown> {
  return (await fixture.request(`/v1/backends/${id}/state`)).json();
}

/** Connects `count` clients one after another and returns the greeting of each: the id of the echo backend that served it, or "" when closed without one. */
async function greetings(scenario: BalancerScenario, count: number): Promise<string[]> {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const client = await TestClient.connect(scenario.port);
    scenario.clients.push(client);
    await waitFor("a greeting or the end of the connection", () => client.firstLine !== "" || client.ended || client.closed);
    lines.push(client.firstLine);
  }

  return lines;
}

/** Returns the backend id each client's connection was opened for, read from the server's pool by the client's local port. */
function idsOf(scenario: BalancerScenario, clients: TestClient[]): string[] {
  const byPort = new Map([...scenario.server.pool.connections()].map((connection) => [connection.clientAddress, connection.backend.id]));

  return clients.map((client) => byPort.get(`127.0.0.1:${client.socket.localPort}`) ?? "(none)");
}

test("disable skips a backend, keeping its connections", async () => {
  const fixture = await start(["a", "b", "c"]);
  const { scenario, request } = fixture;
  const before = await scenario.connectEach(["a", "b", "c"]);

  const response = await putState(fixture, "b", { state: "disabled" });

  expect(response.status).toBe(200);
  expect(response.body).toEqual({ id: "b", target: scenario.target("b"), state: "disabled", changed: true });
  expect(await greetings(scenario, 6)).not.toContain("b");
  await BalancerScenario.echo(before.get("b")!, "still open");
  expect(await getState(fixture, "b")).toEqual({ id: "b", state: "disabled" });
  expect(await getState(fixture, "a")).toEqual({ id: "a", state: "enabled" });

  const logged = scenario.log.withMessage("backend disabled");
  expect(logged.length).toBe(1);
  expect(logged[0]).toMatchObject({ level: "info", component: "admin", backend: "b", target: scenario.target("b"), state: "disabled" });
  expect(logged[0]!.closed).toBeUndefined();

  const status = (await (await request("/v1/backends")).json()) as BalancerStatus;
  expect(status.backends.map((backend) => [backend.id, backend.disabled])).toEqual([["a", false], ["b", true], ["c", false]]);
  expect(status.backends.find((backend) => backend.id === "b")!.active).toBe(1);
  const metrics = await (await request("/metrics")).text();
  expect(metrics).toContain('\ntinylb_backend_disabled{backend="a"} 0\n');
  expect(metrics).toContain('\ntinylb_backend_disabled{backend="b"} 1\n');
  const readyz = await request("/readyz");
  expect(readyz.status).toBe(200);
  expect(await readyz.json()).toEqual({ status: "ready", backends: 3, disabled: 1 });
});

test("disable again changes nothing", async () => {
  const fixture = await start(["a", "b"]);
  await putState(fixture, "b", { state: "disabled" });

  const again = await putState(fixture, "b", { state: "disabled" });

  expect(again.status).toBe(200);
  expect(again.body).toMatchObject({ state: "disabled", changed: false });
  expect(fixture.scenario.log.withMessage("backend disabled").length).toBe(1);
  expect(fixture.scenario.log.withMessage("backend already disabled; nothing changed").length).toBe(1);
});

test("closeConnections closes only that id's connections", async () => {
  const fixture = await start(["a"]);
  const { scenario, api } = fixture;
  // a2 shares a's target, so closing by target would take both ids' connections.
  api.put(createBackend("a2", scenario.target("a")));
  const clients: TestClient[] = [];
  for (let i = 0; i < 4; i++) {
    const client = await TestClient.connect(scenario.port);
    scenario.clients.push(client);
    await waitFor("greeting", () => client.firstLine !== "");
    clients.push(client);
  }
  const ids = idsOf(scenario, clients);
  expect([...ids].sort()).toEqual(["a", "a", "a2", "a2"]);

  const response = await putState(fixture, "a", { state: "disabled", closeConnections: true });

  expect(response.status).toBe(200);
  expect(response.body).toEqual({ id: "a", target: scenario.target("a"), state: "disabled", changed: true, closedConnections: 2 });
  const ofA = clients.filter((_, index) => ids[index] === "a");
  const ofA2 = clients.filter((_, index) => ids[index] === "a2");
  await waitFor("a's clients to close", () => ofA.every((client) => client.closed));
  for (const client of ofA2) {
    await BalancerScenario.echo(client, "kept");
  }
  expect(scenario.log.withMessage("backend disabled")[0]).toMatchObject({ backend: "a", state: "disabled", closed: 2 });

  // Closing again on a disabled id is allowed, and finds nothing left.
  const again = await putState(fixture, "a", { state: "disabled", closeConnections: true });
  expect(again.body).toMatchObject({ changed: false, closedConnections: 0 });
  expect(scenario.log.withMessage("closed connections of disabled backend")[0]).toMatchObject({ backend: "a", closed: 0 });
});

test.each([
  ["disable", { state: "disabled" }],
  ["disable with closeConnections", { state: "disabled", closeConnections: true }],
])("%s fails a pending dial over", async (_name, body) => {
  const blackhole = await StalledListener.start();
  cleanup.push(() => blackhole.stop());
  const fixture = await start(["b"]);
  const { scenario, api } = fixture;
  api.put(createBackend("s", blackhole.target));
  // The rotation hands out b, then s, whose connect never completes.
  expect(await greetings(scenario, 1)).toEqual(["b"]);
  const stuck = await TestClient.connect(scenario.port);
  scenario.clients.push(stuck);
  await waitFor("a dial to s", () => scenario.server.dialingBackendIds().includes("s"));

  await putState(fixture, "s", body);

  // Well before the 3 s connect timeout, which would also fail the client over.
  await waitFor("the stuck client to reach b", () => stuck.firstLine === "b", 1000);
  const status = (await (await fixture.request("/v1/backends")).json()) as BalancerStatus;
  expect(status.backends.find((backend) => backend.id === "s")).toMatchObject({ dialFailures: 0, health: "healthy" });
});

test("enable brings a backend back within one cycle", async () => {
  const fixture = await start(["a", "b", "c"]);
  const { scenario } = fixture;

  await putState(fixture, "b", { state: "disabled" });
  expect(await greetings(scenario, 2)).toEqual(["a", "c"]);

  const response = await putState(fixture, "b", { state: "enabled" });
  expect(response.body).toEqual({ id: "b", target: scenario.target("b"), state: "enabled", changed: true });
  expect(await greetings(scenario, 3)).toEqual(["a", "b", "c"]);
  expect(scenario.log.withMessage("backend enabled")[0]).toMatchObject({ level: "info", backend: "b", target: scenario.target("b"), state: "enabled" });
});

test("retargeted id keeps its disabled mark", async () => {
  const fixture = await start(["a"]);
  const { scenario, api } = fixture;
  api.put(createBackend("x", scenario.target("c")));
  await putState(fixture, "x", { state: "disabled" });

  // The API provider moves x to b's target, then publishes it again unchanged.
  api.put(createBackend("x", scenario.target("b")));
  expect(scenario.running).toContain(`x=${scenario.target("b")}`);
  api.put(createBackend("x", scenario.target("b")));

  expect(await getState(fixture, "x")).toEqual({ id: "x", state: "disabled" });
  expect(await greetings(scenario, 4)).toEqual(["a", "a", "a", "a"]);
});

test("removed id forgets its disabled mark", async () => {
  const fixture = await start(["a"]);
  const { scenario, api } = fixture;
  api.put(createBackend("x", scenario.target("b")));
  await putState(fixture, "x", { state: "disabled" });

  api.delete("x");

  const forgotten = scenario.log.withMessage("disabled backend left the set; its disabled state is forgotten");
  expect(forgotten.map((record) => [record.level, record.backend])).toEqual([["info", "x"]]);
  expect((await fixture.request("/v1/backends/x/state")).status).toBe(404);
  api.put(createBackend("x", scenario.target("b")));
  expect(await getState(fixture, "x")).toEqual({ id: "x", state: "enabled" });
  expect([...(await greetings(scenario, 2))].sort()).toEqual(["a", "b"]);
});

test("all disabled closes clients and fails readyz", async () => {
  const fixture = await start(["a", "b"]);
  const { scenario, request } = fixture;
  await putState(fixture, "a", { state: "disabled" });
  expect(scenario.log.withMessage("every backend is disabled; clients are closed until one is enabled")).toEqual([]);

  await putState(fixture, "b", { state: "disabled" });

  expect(scenario.log.withMessage("every backend is disabled; clients are closed until one is enabled")[0]).toMatchObject({ level: "warn" });
  const readyz = await request("/readyz");
  expect(readyz.status).toBe(503);
  expect(await readyz.json()).toEqual({
    status: "not ready",
    error: 'every backend is disabled, so clients are closed; enable one with tinylb enable ID, or PUT /v1/backends/{id}/state with {"state": "enabled"}',
  });
  const unservedBefore = scenario.server.stats.unserved;
  expect(await greetings(scenario, 2)).toEqual(["", ""]);
  expect(scenario.server.stats.unserved).toBe(unservedBefore + 2);
  expect(scenario.log.withMessage("every backend is disabled; closing client")[0]).toMatchObject({ level: "warn" });

  await putState(fixture, "a", { state: "enabled" });
  expect((await request("/readyz")).status).toBe(200);
  expect(await greetings(scenario, 2)).toEqual(["a", "a"]);
});

test.each([
  ["a missing state", {}, 400, "state", 'state: missing; use "enabled" or "disabled"'],
  ["an unknown state", { state: "drain" }, 400, "state", 'state: must be one of "enabled", "disabled" (got "drain")'],
  ["closeConnections with enabled", { state: "enabled", closeConnections: true }, 400, "closeConnections", 'closeConnections: true applies only with "state": "disabled"'],
  ["closeConnections that is not a boolean", { state: "disabled", closeConnections: "yes" }, 400, "closeConnections", 'closeConnections: expected true or false, got the string "yes"'],
  ["an unknown key", { state: "disabled", close: true }, 400, "(body)", 'unknown key "close"'],
  ["an id not in the set", { state: "disabled" }, 404, "id", 'backend "zz" not found in the running set'],
] as const)("state route rejects %s", async (name, body, status, field, message) => {
  const fixture = await start(["a"]);
  const id = name === "an id not in the set" ? "zz" : "a";

  const response = await putState(fixture, id, body);

  expect(response.status).toBe(status);
  expect(response.body.field).toBe(field);
  expect(String(response.body.error)).toContain(message);
  expect(await getState(fixture, "a")).toEqual({ id: "a", state: "enabled" });
});

test("state route allows GET, HEAD and PUT only", async () => {
  const fixture = await start(["a"]);

  const response = await fixture.request("/v1/backends/a/state", { method: "DELETE" });

  expect(response.status).toBe(405);
  expect(response.headers.get("allow")).toBe("GET, HEAD, PUT");
  expect((await fixture.request("/v1/backends/zz/state")).status).toBe(404);
});
