import type { Contender } from "./contenders.ts";
import type { Sample } from "./workloads.ts";

/** One figure of a workload's table. */
export interface Metric {
  key: string;
  label: string;
  digits: number;
}

/** A workload's table layout: the primary metric gets the ratio columns. */
export interface WorkloadTable {
  id: string;
  title: string;
  primary: Metric;
  /** The balancer's CPU cost per unit of work, compared with HAProxy too. */
  cpu?: Metric;
  others: Metric[];
}

/** Samples by placement, then workload id, then contender name. */
export type Results = Map<string, Map<string, Map<string, Sample[]>>>;

/** Returns the median of `values`, or undefined for none. */
export function median(values: readonly number[]): number | undefined {
  if (values.length === 0) {
    return undefined;
  }
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;

  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Adds a sample to the results, creating the nested maps as needed. */
export function record(results: Results, placement: string, workload: string, contender: string, sample: Sample): void {
  let byWorkload = results.get(placement);
  if (byWorkload === undefined) {
    byWorkload = new Map();
    results.set(placement, byWorkload);
  }
  let byContender = byWorkload.get(workload);
  if (byContender === undefined) {
    byContender = new Map();
    byWorkload.set(workload, byContender);
  }
  const samples = byContender.get(contender) ?? [];
  samples.push(sample);
  byContender.set(contender, samples);
}

function format(value: number | undefined, digits: number): string {
  return value === undefined || !Number.isFinite(value) ? "–" : value.toFixed(digits);
}

function ratio(value: number | undefined, reference: number | undefined): string {
  if (value === undefined || reference === undefined || reference === 0) {
    return "–";
  }

  return `${(value / reference).toFixed(2)}×`;
}

/**
 * Renders one workload's table for one placement: medians, the primary figure as a ratio to
 * the direct connection and to HAProxy with the same thread count, and the CPU cost as a
 * ratio to that HAProxy.
 */
export function renderTable(table: WorkloadTable, samples: Map<string, Sample[]>, contenders: Contender[], notes: Map<string, string>): string {
  const medianOf = (name: string, key: string): number | undefined =>
    median((samples.get(name) ?? []).map((sample) => sample[key]).filter((value): value is number => value !== undefined));
  const haproxyName = (contender: Contender): string | undefined =>
    contenders.find((candidate) => candidate.kind === "haproxy" && candidate.threads === contender.threads)?.name;

  const header = ["contender", "runs", table.primary.label, "vs direct", "vs HAProxy"];
  if (table.cpu !== undefined) {
    header.push(table.cpu.label, "CPU vs HAProxy");
  }
  header.push(...table.others.map((metric) => metric.label));
  const lines = [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`];

  for (const contender of contenders) {
    const runs = samples.get(contender.name)?.length ?? 0;
    if (runs === 0 && !notes.has(contender.name)) {
      continue;
    }
    const primary = medianOf(contender.name, table.primary.key);
    const haproxy = haproxyName(contender);
    const row = [
      contender.name + (notes.has(contender.name) ? ` (${notes.get(contender.name)})` : ""),
      String(runs),
      format(primary, table.primary.digits),
      ratio(primary, medianOf("direct", table.primary.key)),
      ratio(primary, haproxy === undefined ? undefined : medianOf(haproxy, table.primary.key)),
    ];
    if (table.cpu !== undefined) {
      const cpu = medianOf(contender.name, table.cpu.key);
      row.push(format(cpu, table.cpu.digits), ratio(cpu, haproxy === undefined ? undefined : medianOf(haproxy, table.cpu.key)));
    }
    row.push(...table.others.map((metric) => format(medianOf(contender.name, metric.key), metric.digits)));
    lines.push(`| ${row.join(" | ")} |`);
  }

  return lines.join("\n");
}
