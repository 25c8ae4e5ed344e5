import { afterEach, expect, test } from "bun:test";
import { createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import { BackendSetUnion } from "../src/backend-set-union.ts";
import { collectStatus } from "../src/balancer-status.ts";
import { renderMetrics } from "../src/metrics.ts";
import { StaticProvider } from "../src/providers/static-provider.ts";
import { formatStatus } from "../src/status-command.ts";
import { TestBackend, TestClient } from "./support/backends.ts";
import { BalancerScenario } from "./support/balancer-scenario.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { setOf, startLoggedServer } from "./support/test-server.ts";
import { waitFor } from "./support/wait.ts";

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

test("status counts a removed id's open connection", async () => {
  const scenario = new BalancerScenario();
  cleanup.push(() => scenario.close());
  scenario.startBackends(["x", "y"]);
  // b1 and b3 share the target of backend x.
  const provider = new StaticProvider(
    new BackendSet([createBackend("b1", scenario.target("x")), createBackend("b2", scenario.target("y")), createBackend("b3", scenario.target("x"))]),
  );
  await scenario.start(provider);
  // The rotation b1, b2, b3, b1 gives b1 two connections and the others one each.
  for (let i = 0; i < 4; i++) {
    const client = await TestClient.connect(scenario.port);
    scenario.clients.push(client);
    await waitFor("greeting", () => client.firstLine !== "");
  }
  expect(scenario.server.pool.size).toBe(4);

  // Removing b3 keeps its connection open, because b1 still uses the target.
  scenario.server.applySet(new BackendSet([createBackend("b1", scenario.target("x")), createBackend("b2", scenario.target("y"))]));
  expect(scenario.server.pool.size).toBe(4);

  const status = collectStatus(scenario.server, scenario.union);
  expect(status.backends.map((backend) => [backend.id, backend.active])).toEqual([
    ["b1", 2],
    ["b2", 1],
  ]);
  expect(status.removed.map((backend) => [backend.id, backend.target, backend.active])).toEqual([["b3", scenario.target("x"), 1]]);
  const active = [...status.backends, ...status.removed].reduce((sum, backend) => sum + backend.active, 0);
  expect(active).toBe(scenario.server.pool.size);

  const table = formatStatus(status);
  expect(table).toMatch(new RegExp(`\\nb3\\s+${scenario.target("x").replaceAll(".", "\\.")}\\s+\\(removed\\)\\s+1\\s`));
  expect(table).toContain('Removed: "b3" left the set; its 1 open connection stays until it closes, because its target is still in use\n');

  const metrics = renderMetrics({ server: scenario.server, union: scenario.union });
  expect(metrics).toContain('tinylb_backend_connections_active{backend="b3"} 1\n');
  const samples = [...metrics.matchAll(/^tinylb_backend_connections_active\{backend="[^"]+"\} (\d+)$/gm)];
  expect(samples.reduce((sum, match) => sum + Number(match[1]), 0)).toBe(scenario.server.pool.size);
});

test("status gives drainEndsInMs in whole milliseconds", async () => {
  const clock = new FakeClock();
  const backends = ["a", "b"].map((id) => TestBackend.echo(id));
  cleanup.push(async () => backends.forEach((backend) => backend.stop()));
  const [a, b] = backends;
  const { server, port } = await startLoggedServer(setOf([a!, b!]), { onRemoval: "drain", drainTimeoutMs: 5000, clock }, cleanup);
  const client = await TestClient.connect(port);
  cleanup.push(async () => client.close());
  await waitFor("greeting from a", () => client.firstLine !== "");
  expect(client.firstLine).toBe("a");

  server.applySet(setOf([b!]));
  clock.advance(1000.4);

  const [removed] = collectStatus(server, new BackendSetUnion(() => {})).removed;
  expect(removed?.drainEndsInMs).toBe(4000);
});
