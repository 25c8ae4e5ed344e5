import { afterEach, expect, test } from "bun:test";
import { createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import { escapeLabelValue, renderMetrics } from "../src/metrics.ts";
import { StaticProvider } from "../src/providers/static-provider.ts";
import { buildCommit, VERSION } from "../src/version.ts";
import { waitFor } from "./support/wait.ts";
import { BalancerScenario } from "./support/balancer-scenario.ts";

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) {
    await step();
  }
});

test.each([
  ["plain", "plain"],
  ['a"b', 'a\\"b'],
  ["a\\b", "a\\\\b"],
  ["a\nb", "a\\nb"],
])("escapeLabelValue %p", (value, escaped) => {
  expect(escapeLabelValue(value)).toBe(escaped);
});

test("renderMetrics writes valid exposition lines", async () => {
  const scenario = new BalancerScenario();
  cleanup.push(() => scenario.close());
  scenario.startBackends(["a"]);
  await scenario.start(new StaticProvider(new BackendSet([createBackend("a", scenario.target("a")), createBackend("gone", "127.0.0.1:9")])));
  scenario.server.stats.backend("left-earlier").total = 3;

  const text = renderMetrics({ server: scenario.server, union: scenario.union, reloads: { reloads: 4, reloadFailures: 1 } });
  const lines = text.trimEnd().split("\n");

  const sample = /^[a-z_]+(\{[a-z_]+="[^"\\\n]*"(,[a-z_]+="[^"\\\n]*")*\})? -?\d+(\.\d+)?$/;
  let declared = "";
  for (const line of lines) {
    if (line.startsWith("# HELP ")) {
      declared = line.split(" ")[2]!;
      continue;
    }
    if (line.startsWith("# TYPE ")) {
      expect(line).toMatch(new RegExp(`^# TYPE ${declared} (counter|gauge)$`));
      continue;
    }
    expect(line).toMatch(sample);
    expect(line.startsWith(declared)).toBe(true);
  }
  expect(text).toContain('tinylb_backend_connections_total{backend="left-earlier"} 3\n');
  expect(text).toContain('tinylb_backend_connections_active{backend="gone"} 0\n');
  expect(text).toContain("tinylb_config_reloads_total 4\n");
  expect(text).toContain("tinylb_config_reload_failures_total 1\n");
  expect(text).toContain("tinylb_backend_set_size 2\n");
  expect(text).toContain(`tinylb_build_info{version="${VERSION}",commit="${buildCommit()}",bun="${Bun.version}"} 1\n`);
  const started = Number(/^process_start_time_seconds (\S+)$/m.exec(text)?.[1]);
  expect(Math.abs(started - Date.now() / 1000)).toBeLessThan(3600);
  expect(text).not.toContain("tinylb_backend_probe_up{");
  expect(text).not.toContain("tinylb_backend_probe_failures_total{");
  expect(text).toContain('tinylb_backend_unhealthy_total{backend="a"} 0\n');
});

test("renderMetrics shows each probed backend's probe state", async () => {
  const scenario = new BalancerScenario();
  cleanup.push(() => scenario.close());
  scenario.startBackends(["a"]);
  // Nothing listens on port 9 of loopback, so the tcp probe of "gone" fails.
  await scenario.start(new StaticProvider(new BackendSet([createBackend("a", scenario.target("a")), createBackend("gone", "127.0.0.1:9")])));
  scenario.server.health.configure({ probe: { kind: "tcp", intervalMs: 100, timeoutMs: 50, fall: 1 } });

  await waitFor("the probe of gone to fall", () => scenario.server.health.state("gone")?.probe?.up === false);
  const text = renderMetrics({ server: scenario.server, union: scenario.union });

  expect(text).toContain('tinylb_backend_probe_up{backend="a"} 1\n');
  expect(text).toContain('tinylb_backend_probe_up{backend="gone"} 0\n');
  expect(text).toContain('tinylb_backend_probe_failures_total{backend="a"} 0\n');
  expect(text).toMatch(/^tinylb_backend_probe_failures_total\{backend="gone"\} [1-9]\d*$/m);
  expect(text).toContain('tinylb_backend_unhealthy_total{backend="a"} 0\n');
  expect(text).toContain('tinylb_backend_unhealthy_total{backend="gone"} 1\n');
});

test("unhealthy_total counts turns to unhealthy", async () => {
  const scenario = new BalancerScenario();
  cleanup.push(() => scenario.close());
  scenario.startBackends(["a"]);
  // Nothing listens on port 9 of loopback, so every dial of "b" fails; dials stand in for clients here.
  const provider = new StaticProvider(new BackendSet([createBackend("a", scenario.target("a")), createBackend("b", "127.0.0.1:9")]));
  await scenario.start(provider);
  const b = scenario.server.set.get("b")!;
  const unhealthyCount = (): string | undefined => /^tinylb_backend_unhealthy_total\{backend="b"\} (\d+)$/m.exec(renderMetrics({ server: scenario.server, union: scenario.union }))?.[1];

  scenario.server.health.dialFailed(b, "connection refused");
  expect(unhealthyCount()).toBe("1");
  scenario.server.health.dialFailed(b, "connection refused");
  expect(unhealthyCount()).toBe("1");
  scenario.server.health.dialSucceeded(b);
  scenario.server.health.dialFailed(b, "connection refused");
  expect(unhealthyCount()).toBe("2");

  scenario.server.applySet(new BackendSet([scenario.server.set.get("a")!, createBackend("b", "127.0.0.1:10")]));
  expect(unhealthyCount()).toBe("0");
});
