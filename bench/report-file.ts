import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { Contender } from "./contenders.ts";
import { renderTable, type Results, type WorkloadTable } from "./report.ts";
import type { BenchOptions } from "./run.ts";

/** Everything one benchmark run produced. */
export interface BenchReport {
  options: BenchOptions;
  machine: Record<string, string>;
  started: Date;
  finished: Date;
  cores: number;
  idleConnections: number;
  privateNetwork: boolean;
  contenders: Contender[];
  /** Contender name to the reason it failed the correctness check. */
  failures: Map<string, string>;
  results: Results;
  errors: string[];
}

const START_MARK = "<!-- bench results: start (written by bench/run.ts) -->";
const END_MARK = "<!-- bench results: end -->";

const TABLES: WorkloadTable[] = [
  {
    id: "bulk-1",
    title: "Bulk throughput, one stream (iperf3)",
    primary: { key: "gbps", label: "Gbit/s", digits: 2 },
    cpu: { key: "cpuSecondsPerGiB", label: "CPU s/GiB", digits: 3 },
    others: [{ key: "cpuPercent", label: "CPU %", digits: 0 }],
  },
  {
    id: "bulk-4",
    title: "Bulk throughput, four streams (iperf3 -P 4)",
    primary: { key: "gbps", label: "Gbit/s", digits: 2 },
    cpu: { key: "cpuSecondsPerGiB", label: "CPU s/GiB", digits: 3 },
    others: [{ key: "cpuPercent", label: "CPU %", digits: 0 }],
  },
  {
    id: "connection-rate",
    title: "Connection rate, one request per connection (wrk, Connection: close, 4 HTTP backends)",
    primary: { key: "connectionsPerSecond", label: "conn/s", digits: 0 },
    cpu: { key: "cpuMicrosecondsPerConnection", label: "CPU µs/conn", digits: 1 },
    others: [
      { key: "cpuPercent", label: "CPU %", digits: 0 },
      { key: "errors", label: "errors", digits: 0 },
    ],
  },
  {
    id: "kept-alive",
    title: "Requests over kept-alive connections (wrk, 32 connections, 4 HTTP backends)",
    primary: { key: "requestsPerSecond", label: "req/s", digits: 0 },
    cpu: { key: "cpuMicrosecondsPerRequest", label: "CPU µs/req", digits: 2 },
    others: [
      { key: "p50Ms", label: "p50 ms", digits: 3 },
      { key: "p99Ms", label: "p99 ms", digits: 3 },
      { key: "cpuPercent", label: "CPU %", digits: 0 },
      { key: "errors", label: "errors", digits: 0 },
    ],
  },
  {
    id: "idle-memory",
    title: "Resident memory with idle connections",
    primary: { key: "bytesPerIdleConnection", label: "bytes/conn", digits: 0 },
    others: [
      { key: "rssIdleMiB", label: "RSS before MiB", digits: 1 },
      { key: "rssLoadedMiB", label: "RSS after MiB", digits: 1 },
      { key: "idleHeld", label: "connections held", digits: 0 },
    ],
  },
  {
    id: "startup",
    title: "Start-up: process start to the first relayed reply byte",
    primary: { key: "startupMs", label: "ms", digits: 1 },
    others: [],
  },
];

/** Renders the report as Markdown. */
export function renderReport(report: BenchReport): string {
  const { options } = report;
  const lines: string[] = [];
  const command = `bun bench/run.ts ${process.argv.slice(2).join(" ")}`.trim();
  lines.push(
    `Run of ${report.started.toISOString()} (${Math.round((report.finished.getTime() - report.started.getTime()) / 1000)} s): \`${command}\`, ` +
      `${options.runs} run(s) of ${options.seconds} s per timed workload after ${options.warmupSeconds} s of warm-up, medians shown${options.quick ? " (quick mode: one short run, not a result)" : ""}.`,
    "",
    ...Object.entries(report.machine).map(([name, version]) => `- ${name}: ${version}`),
    `- network: ${report.privateNetwork ? "loopback of a private network namespace" : "host loopback"}`,
    `- idle connections: ${report.idleConnections}`,
    "",
    "Correctness check (1 MiB echoed through two connections, then half-close):",
    "",
  );
  for (const contender of report.contenders) {
    const failure = report.failures.get(contender.name);
    lines.push(`- ${contender.name}: ${failure === undefined ? "passed" : `FAILED: ${failure}`}`);
  }

  const notes = new Map([...report.failures.keys()].map((name) => [name, "failed correctness check"]));
  for (const [placement, byWorkload] of report.results) {
    lines.push("", `### ${placement === "pinned" ? "Pinned: balancer alone on core 0, load generator and backends on core 1" : "Unpinned: nothing pinned"}`);
    for (const table of TABLES) {
      const samples = byWorkload.get(table.id);
      if (samples !== undefined) {
        lines.push("", `#### ${table.title}`, "", renderTable(table, samples, report.contenders, notes));
      }
    }
  }
  if (report.errors.length > 0) {
    lines.push("", "Failed measurements:", "", ...report.errors.map((error) => `- ${error}`));
  }

  return lines.join("\n");
}

/** Prints the report and, when `path` is set, replaces the results section of that file. */
export function writeReport(report: BenchReport, path?: string): void {
  const text = renderReport(report);
  console.log(`\n${text}\n`);
  if (path === undefined) {
    return;
  }

  const section = `${START_MARK}\n${text}\n${END_MARK}`;
  let document = existsSync(path) ? readFileSync(path, "utf8") : `# Benchmarks\n\n## Results\n\n${START_MARK}\n${END_MARK}\n`;
  const start = document.indexOf(START_MARK);
  const end = document.indexOf(END_MARK);
  document = start === -1 || end === -1 ? `${document.trimEnd()}\n\n## Results\n\n${section}\n` : document.slice(0, start) + section + document.slice(end + END_MARK.length);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, document);
  console.log(`bench: results written to ${path}`);
}
