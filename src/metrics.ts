import type { HealthState } from "./backend-health.ts";
import type { BackendSetUnion } from "./backend-set-union.ts";
import { openTrafficById } from "./balancer-status.ts";
import type { DurationHistogram } from "./duration-histogram.ts";
import { readProcessMetrics } from "./process-metrics.ts";
import type { Server } from "./server.ts";
import { buildCommit, VERSION } from "./version.ts";
import { relayWorkersOf, STATS_REPLY_MS } from "./worker-pool.ts";

/** Content type of the Prometheus text exposition format, version 0.0.4. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** The objects the metrics are read from. */
export interface MetricsSource {
  server: Server;
  union: BackendSetUnion;
  /** Config reload counters, when a config file is used. */
  reloads?: { readonly reloads: number; readonly reloadFailures: number };
  /** Connections that the admin API and the metrics server closed at accept, at their connection caps. */
  controlRejections?: { admin: number; metrics: number };
  /** Relay workers whose counters are from their last periodic delta (see `WorkerPool.refreshCounters`); absent without a refresh. */
  lateWorkers?: readonly number[];
}

type Labels = Record<string, string>;

/** Builds a page in the Prometheus text format: a HELP and TYPE line, then the samples of each metric. */
class MetricsPage {
  #lines: string[] = [];

  add(name: string, type: "counter" | "gauge", help: string, samples: [Labels, number][]): void {
    this.#lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) {
      this.#lines.push(`${name}${formatLabels(labels)} ${value}`);
    }
  }

  /**
   * Adds a histogram: per sample, a `_bucket` line for each bound with the observations up
   * to it (cumulative), one for `le="+Inf"` with all of them, then `_sum` and `_count`.
   */
  addHistogram(name: string, help: string, samples: [Labels, DurationHistogram][]): void {
    this.#lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
    for (const [labels, histogram] of samples) {
      let cumulative = 0;
      histogram.buckets.forEach((count, index) => {
        cumulative += count;
        const le = index < histogram.bounds.length ? String(histogram.bounds[index]) : "+Inf";
        this.#lines.push(`${name}_bucket${formatLabels({ ...labels, le })} ${cumulative}`);
      });
      this.#lines.push(`${name}_sum${formatLabels(labels)} ${histogram.sum}`, `${name}_count${formatLabels(labels)} ${histogram.count}`);
    }
  }

  text(): string {
    return this.#lines.join("\n") + "\n";
  }
}

/**
 * Renders the metrics of a running balancer. Per-backend series cover every id of the set,
 * every id with open connections, and ids that left the set until CounterRetention drops
 * their counters (5 minutes after their last connection closed, by default). An id that
 * returns after that counts from 0, which Prometheus reads as a counter reset.
 */
export function renderMetrics(source: MetricsSource): string {
  const { server, union } = source;
  const stats = server.stats;
  const open = openTrafficById(server);
  const ids = [...new Set([...server.set.backends.map((backend) => backend.id), ...stats.ids(), ...open.keys()])].sort();
  const perBackend = (value: (id: string) => number): [Labels, number][] => ids.map((id) => [{ backend: id }, value(id)]);
  const page = new MetricsPage();

  page.add("tinylb_backend_connections_active", "gauge", "Open connections per backend id.", perBackend((id) => open.get(id)?.active ?? 0));
  page.add("tinylb_backend_connections_total", "counter", "Connections attached to each backend id since start, or since it returned after its retired series was dropped.", perBackend((id) => stats.backend(id).total));
  page.add(
    "tinylb_backend_bytes_total",
    "counter",
    "Bytes relayed per backend id; direction is to_backend or to_client.",
    ids.flatMap((id): [Labels, number][] => [
      [{ backend: id, direction: "to_backend" }, stats.backend(id).bytesToBackend + (open.get(id)?.bytesToBackend ?? 0)],
      [{ backend: id, direction: "to_client" }, stats.backend(id).bytesToClient + (open.get(id)?.bytesToClient ?? 0)],
    ]),
  );
  page.add("tinylb_backend_dial_failures_total", "counter", "Dials per backend id that failed or timed out.", perBackend((id) => stats.backend(id).dialFailures));
  page.addHistogram(
    "tinylb_backend_connect_duration_seconds",
    "Seconds from the start of a dial to the connected socket, per backend id; successful dials only.",
    ids.map((id): [Labels, DurationHistogram] => [{ backend: id }, stats.backend(id).connectDuration]),
  );
  // Each state is a snapshot built on request, so it is built once per page, not once per metric.
  const healthStates = new Map(server.set.backends.map((backend) => [backend.id, server.health.state(backend.id)]));
  /** Samples per backend of the set with a health state; `value` returns undefined to leave a backend out. */
  const perHealthState = (value: (state: HealthState) => number | undefined): [Labels, number][] =>
    server.set.backends.flatMap((backend): [Labels, number][] => {
      const state = healthStates.get(backend.id);
      const sample = state === undefined ? undefined : value(state);

      return sample === undefined ? [] : [[{ backend: backend.id }, sample]];
    });
  page.add(
    "tinylb_backend_healthy",
    "gauge",
    "1 while the backend id is healthy; 0 while a dial back-off or failed probes make the rotation skip it, while it is retried after a back-off, or while it is pending (tinylb_backend_pending).",
    server.set.backends.map((backend): [Labels, number] => [{ backend: backend.id }, healthStates.get(backend.id)?.healthy === false ? 0 : 1]),
  );
  page.add(
    "tinylb_backend_pending",
    "gauge",
    "1 while the backend id joined a running set and waits for its first probe result, so the rotation skips it; only backends with a probe.",
    perHealthState((state) => (state.probe === undefined ? undefined : Number(state.condition === "pending"))),
  );
  page.add(
    "tinylb_backend_disabled",
    "gauge",
    "1 while the backend id is out of the rotation through the admin API or the config file's disabled key, else 0; its probes still run.",
    server.set.backends.map((backend): [Labels, number] => [{ backend: backend.id }, server.disabled.has(backend.id) ? 1 : 0]),
  );
  page.add(
    "tinylb_backend_probe_up",
    "gauge",
    "1 while the active probe counts the backend id up, 0 once `fall` probes in a row failed; only backends with a probe.",
    perHealthState((state) => (state.probe === undefined ? undefined : Number(state.probe.up))),
  );
  page.add(
    "tinylb_backend_unhealthy_total",
    "counter",
    "Times the backend id turned unhealthy since it joined the set or changed target.",
    perHealthState((state) => state.timesUnhealthy),
  );
  page.add(
    "tinylb_backend_probe_failures_total",
    "counter",
    "Failed active probes of the backend id since it joined the set or changed target; only backends with a probe.",
    perHealthState((state) => state.probe?.failedTotal),
  );
  const now = server.slowStart.now();
  page.add(
    "tinylb_backend_slow_start_weight",
    "gauge",
    "Share of a full weight that the backend id has for new clients: from 0.1 when its slow start begins up to 1 at its end, and 1 outside slow start.",
    server.set.backends.map((backend): [Labels, number] => [{ backend: backend.id }, server.slowStart.weightOf(backend, now)]),
  );
  page.add("tinylb_degraded", "gauge", "1 while every enabled backend is unhealthy or pending and each is tried anyway, else 0.", [[{}, server.health.degraded ? 1 : 0]]);
  page.add("tinylb_backend_set_size", "gauge", "Backends in the running set.", [[{}, server.set.size]]);
  page.add("tinylb_backend_set_changes_total", "counter", "Effective backend set changes applied.", [[{}, stats.setChanges]]);
  page.add("tinylb_backend_id_conflicts", "gauge", "Backend ids published by two providers with different targets.", [[{}, union.conflicts.length]]);
  page.add(
    "tinylb_provider_backends",
    "gauge",
    "Backends in each provider's latest set.",
    union.slots.map((slot): [Labels, number] => [{ provider: slot.name }, slot.set.size]),
  );
  // Only DNS, Kubernetes and etcd fetch their sets, so only they have these series.
  const fetching = union.slots.filter((slot) => slot.health !== undefined);
  page.add(
    "tinylb_provider_up",
    "gauge",
    "1 while the provider's last fetch (DNS lookup, Kubernetes or etcd list or watch) succeeded, else 0; a failing provider keeps its last set.",
    fetching.map((slot): [Labels, number] => [{ provider: slot.name }, slot.health!.failing ? 0 : 1]),
  );
  page.add("tinylb_provider_failures_total", "counter", "Failed fetches per provider.", fetching.map((slot): [Labels, number] => [{ provider: slot.name }, slot.health!.failures]));
  page.add(
    "tinylb_provider_stale",
    "gauge",
    "1 while the provider keeps its last set because the source (Kubernetes or etcd) lists no usable backend, else 0.",
    fetching.map((slot): [Labels, number] => [{ provider: slot.name }, slot.health!.stale ? 1 : 0]),
  );
  page.add("tinylb_connections_open", "gauge", "Client connections open or dialing a backend, in every thread; --max-connections caps this count.", [[{}, server.activeCountInAllThreads]]);
  page.add("tinylb_connections_max", "gauge", "The --max-connections cap; 0 means no cap.", [[{}, server.limits.configuredMaxConnections]]);
  page.add("tinylb_backend_connections_max", "gauge", "The --max-connections-per-backend cap, counted per target; 0 means no cap.", [[{}, server.limits.configuredMaxConnectionsPerBackend]]);
  page.add("tinylb_clients_accepted_total", "counter", "Clients accepted on every listener.", [[{}, stats.accepted]]);
  page.addHistogram(
    "tinylb_connection_duration_seconds",
    "Seconds from the accept of a client on any listener to its close, including clients closed without a backend.",
    [[{}, stats.connectionDuration]],
  );
  page.add("tinylb_clients_unserved_total", "counter", "Clients closed without a backend: empty set, every dial failed, or every backend cooling down after a failed dial.", [[{}, stats.unserved]]);
  page.add("tinylb_connections_idle_closed_total", "counter", "Connections closed because they carried no byte in either direction for the idle timeout.", [[{}, stats.idleClosed]]);
  page.add("tinylb_clients_rejected_total", "counter", "Clients closed at once by a connection cap; limit is global or backend.", [
    [{ limit: "global" }, server.limits.rejectedGlobal],
    [{ limit: "backend" }, server.limits.rejectedBackend],
  ]);
  page.add("tinylb_admin_connections_rejected_total", "counter", "Connections to the admin API closed at accept because its cap of open connections was reached.", [[{}, source.controlRejections?.admin ?? 0]]);
  page.add("tinylb_metrics_connections_rejected_total", "counter", "Connections to the metrics server closed at accept because its cap of open connections was reached.", [[{}, source.controlRejections?.metrics ?? 0]]);
  page.add("tinylb_accept_pauses_total", "counter", "Times the listeners stopped because the file descriptor limit was nearly reached.", [[{}, server.acceptPauses + (relayWorkersOf(server)?.acceptPauses ?? 0)]]);
  if (source.lateWorkers !== undefined) {
    page.add("tinylb_relay_workers_late", "gauge", `Relay workers that did not send their counters within ${STATS_REPLY_MS} ms of this scrape, so their part of the counts is up to a second old.`, [[{}, source.lateWorkers.length]]);
  }
  page.add("tinylb_config_reloads_total", "counter", "Config file reloads: changed content or SIGHUP.", [[{}, source.reloads?.reloads ?? 0]]);
  page.add("tinylb_config_reload_failures_total", "counter", "Config file reloads rejected; the last good set kept serving.", [[{}, source.reloads?.reloadFailures ?? 0]]);

  page.add("tinylb_build_info", "gauge", "Always 1; the labels name the tinylb version, its git commit and the Bun version it runs on.", [[{ version: VERSION, commit: buildCommit(), bun: Bun.version }, 1]]);
  page.add("process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch, in seconds.", [[{}, Math.round(performance.timeOrigin) / 1000]]);
  for (const metric of readProcessMetrics()) {
    page.add(metric.name, metric.type, metric.help, [[{}, metric.value]]);
  }

  return page.text();
}

function formatLabels(labels: Labels): string {
  const pairs = Object.entries(labels).map(([key, value]) => `${key}="${escapeLabelValue(value)}"`);

  return pairs.length === 0 ? "" : `{${pairs.join(",")}}`;
}

/** Escapes a label value as the text format requires: backslash, double quote and line feed. */
export function escapeLabelValue(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}
