import { afterEach, expect, test } from "bun:test";
import { createBackend } from "../src/backend.ts";
import { BackendSet } from "../src/backend-set.ts";
import { escapeLabelValue, renderMetrics } from "../src/metrics.ts";
import { StaticProvider } from "../src/providers/static-provider.ts";
import { buildCommit, VERSION } from "../src/version.ts";
import { TestClient } from "./support/backends.ts";
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

  const sample = /^[a-z_]+(\{[a-z_]+="[^"\\\n]*"(,[a-z_]+="[^"\\\n]*")*\})? -?\d+(\.\d+)?(e-?\d+)?$/;
  let declared = "";
  for (const line of lines) {
    if (line.startsWith("# HELP ")) {
      declared = line.split(" ")[2]!;
      continue;
    }
    if (line.startsWith("# TYPE ")) {
      expect(line).toMatch(new RegExp(`^# TYPE ${declared} (counter|gauge|histogram)$`));
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

/** One histogram series of a metrics page: its `le` bounds and cumulative counts in page order, `_sum` and `_count`. */
interface HistogramSeries {
  les: string[];
  cumulative: number[];
  sum: number | undefined;
  count: number | undefined;
}

/** Parses every series of the histogram `name`, keyed by its labels other than `le` (as written on the page). */
function histogramSeries(text: string, name: string): Map<string, HistogramSeries> {
  const byLabels = new Map<string, HistogramSeries>();
  const seriesOf = (labels: string): HistogramSeries => {
    let series = byLabels.get(labels);
    if (series === undefined) {
      series = { les: [], cumulative: [], sum: undefined, count: undefined };
      byLabels.set(labels, series);
    }

    return series;
  };
  const line = new RegExp(`^${name}_(bucket|sum|count)(?:\\{(.*)\\})? (\\S+)$`);
  for (const match of text.split("\n").map((text) => line.exec(text))) {
    if (match === null) {
      continue;
    }
    const [, suffix, labelText = "", value] = match;
    const le = /(?:^|,)le="([^"]*)"/.exec(labelText)?.[1];
    const labels = labelText.replace(/,?le="[^"]*"/, "");
    const series = seriesOf(labels);
    if (suffix === "bucket") {
      series.les.push(le!);
      series.cumulative.push(Number(value));
    } else if (suffix === "sum") {
      series.sum = Number(value);
    } else {
      series.count = Number(value);
    }
  }

  return byLabels;
}

/** Checks one series against the Prometheus text format's rules for histograms. */
function expectValidHistogram(series: HistogramSeries): void {
  expect(series.les.at(-1)).toBe("+Inf");
  const bounds = series.les.slice(0, -1).map(Number);
  for (let index = 1; index < bounds.length; index++) {
    expect(bounds[index]!).toBeGreaterThan(bounds[index - 1]!);
    expect(series.cumulative[index]!).toBeGreaterThanOrEqual(series.cumulative[index - 1]!);
  }
  expect(series.cumulative.at(-1)!).toBeGreaterThanOrEqual(series.cumulative.at(-2)!);
  expect(series.count).toBe(series.cumulative.at(-1)!);
  expect(series.sum).toBeGreaterThanOrEqual(0);
}

test("renderMetrics writes histograms in the text format", async () => {
  const scenario = new BalancerScenario();
  cleanup.push(() => scenario.close());
  scenario.startBackends(["a"]);
  await scenario.start(new StaticProvider(new BackendSet([createBackend("a", scenario.target("a")), createBackend("idle", "127.0.0.1:9")])));
  const started = performance.now();

  const clients = [await TestClient.connect(scenario.port), await TestClient.connect(scenario.port), await TestClient.connect(scenario.port)];
  await waitFor("every greeting", () => clients.every((client) => client.firstLine === "a"));
  clients.forEach((client) => client.close());
  await waitFor("every connection closed", () => scenario.server.stats.connectionDuration.count === 3);
  const elapsedSeconds = (performance.now() - started) / 1000;
  const text = renderMetrics({ server: scenario.server, union: scenario.union });

  expect(text).toContain("# TYPE tinylb_backend_connect_duration_seconds histogram\n");
  expect(text).toContain("# TYPE tinylb_connection_duration_seconds histogram\n");
  const connect = histogramSeries(text, "tinylb_backend_connect_duration_seconds");
  expect([...connect.keys()]).toEqual(['backend="a"', 'backend="idle"']);
  for (const series of connect.values()) {
    expectValidHistogram(series);
  }
  expect(connect.get('backend="a"')!.les).toEqual(["0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]);
  expect(connect.get('backend="a"')!.count).toBe(3);
  expect(connect.get('backend="a"')!.sum).toBeLessThanOrEqual(elapsedSeconds);
  expect(connect.get('backend="idle"')!.count).toBe(0);
  expect(connect.get('backend="idle"')!.sum).toBe(0);

  const lifetimes = histogramSeries(text, "tinylb_connection_duration_seconds");
  expect([...lifetimes.keys()]).toEqual([""]);
  const lifetime = lifetimes.get("")!;
  expectValidHistogram(lifetime);
  expect(lifetime.count).toBe(3);
  expect(lifetime.sum).toBeGreaterThan(0);
  expect(lifetime.sum).toBeLessThanOrEqual(3 * elapsedSeconds);
});

test("connect histogram of a retired id goes with its counters", async () => {
  const scenario = new BalancerScenario();
  cleanup.push(() => scenario.close());
  await scenario.start(new StaticProvider(BackendSet.EMPTY));
  scenario.server.stats.backend("left").connectDuration.observe(0.002);
  const render = (): string => renderMetrics({ server: scenario.server, union: scenario.union });

  expect(render()).toContain('tinylb_backend_connect_duration_seconds_count{backend="left"} 1\n');
  scenario.server.stats.delete("left");
  expect(render()).not.toContain('backend="left"');
});

test("renderMetrics counts late relay workers", async () => {
  const scenario = new BalancerScenario();
  cleanup.push(() => scenario.close());
  await scenario.start(new StaticProvider(BackendSet.EMPTY));

  expect(renderMetrics({ server: scenario.server, union: scenario.union })).not.toContain("tinylb_relay_workers_late");
  expect(renderMetrics({ server: scenario.server, union: scenario.union, lateWorkers: [] })).toContain("\ntinylb_relay_workers_late 0\n");
  expect(renderMetrics({ server: scenario.server, union: scenario.union, lateWorkers: [2, 3] })).toContain("\ntinylb_relay_workers_late 2\n");
});
