import { isAbsolute } from "node:path";
import { ConfigError } from "./config.ts";
import { formatDuration } from "./duration.ts";
import { describeFileError } from "./file-errors.ts";
import { type HealthConfig, HEALTH_DEFAULTS } from "./health-config.ts";
import { probeFieldApplies } from "./probe-fields.ts";
import { PROBE_DEFAULTS, type ProbeKind, type ProbeOverrides, resolveProbeSettings } from "./probes/probe.ts";
import { MAX_PEM_FILE_BYTES, MAX_TOKEN_FILE_BYTES, readRegularFile } from "./regular-file.ts";
import { joinWords } from "./word-lists.ts";

/** Fields of a probe block, as a config file names them. */
type ProbeField = "kind" | "interval" | "timeout" | "rise" | "fall" | "path" | "expectStatus" | "tls" | "tls.ca" | "tls.cert" | "tls.key" | "bearerTokenFile";

/** Fields that configure a probe; without a probe kind they have no effect. */
const KIND_DEPENDENT_FIELDS: ProbeField[] = ["interval", "timeout", "rise", "fall", "path", "expectStatus", "tls", "bearerTokenFile"];

/** The flag that sets each probe field, where one exists. */
const FLAG_OF: Partial<Record<ProbeField, string>> = {
  kind: "--probe",
  interval: "--probe-interval",
  timeout: "--probe-timeout",
  path: "--probe-path",
  "tls.ca": "--probe-ca",
  bearerTokenFile: "--probe-token-file",
};

/** One probe block (flags, the file's `probe`, or a backend's `probe`) and how to name its fields. */
interface ProbeBlock {
  probe: ProbeOverrides;
  name(field: ProbeField): string;
  /** The field path and id of a backend's block, such as `backends[2].probe` and `api-2`, which its problems name. */
  backend?: { path: string; id: string };
}

/** Returns ` (backend "ID")` for a backend's block, as schema errors of a backend entry name it, or "". */
function backendLabel(block: ProbeBlock): string {
  return block.backend === undefined ? "" : ` (backend ${JSON.stringify(block.backend.id)})`;
}

/** Most problems listed in one error, as for schema errors of a config file. */
const MAX_PROBLEMS = 5;

/**
 * Checks the probe settings of flags and a config file beyond what the schema can check.
 * Every file a probe reads (CA, client certificate and key, bearer token) must be readable
 * now. Fields must suit the probe kind, so a tcp probe takes no `expectStatus`, and probe
 * fields without any probe kind are rejected because no probe would run. A timeout set by
 * the user must not exceed the interval. A drain timeout needs the drain removal policy.
 *
 * Runs at start-up and before a reloaded file is accepted, so a bad file keeps the last
 * good config. Probes still read the files on every run, so a token may rotate.
 *
 * @throws {ConfigError} naming each problem's field (`probe.tls.ca`, `backends[1].probe.timeout`
 *   with the backend's id, or the flag) and its value.
 */
export function checkProbeConfig(fromFlags: HealthConfig | undefined, fromFile: HealthConfig | undefined, configPath?: string): void {
  const flagProbe = fromFlags?.probe ?? {};
  // The flags set tls through --probe-ca and --probe-server-name.
  const tlsFlag = flagProbe.tls?.caFile !== undefined ? "--probe-ca" : "--probe-server-name";
  const flags: ProbeBlock = { probe: flagProbe, name: (field) => (field === "tls" ? tlsFlag : (FLAG_OF[field] ?? `probe.${field}`)) };
  const file: ProbeBlock = { probe: fromFile?.probe ?? {}, name: (field) => `probe.${field}` };
  const backends: ProbeBlock[] = [...(fromFile?.probeOverrides ?? [])].map(([id, probe]) => {
    const path = fromFile?.probeOverridePaths?.get(id) ?? `backends[id=${id}].probe`;

    return { probe, name: (field) => `${path}.${field}`, backend: { path, id } };
  });

  const problems = [flags, file, ...backends].flatMap(fileProblems);
  const balancer = mergeBlocks(flags, file);
  problems.push(...kindProblems(balancer, balancer.probe.kind), ...timingProblems([balancer], balancer.probe));
  // Balancer-wide fields count as used when a backend sets its own kind and inherits them.
  if (balancer.probe.kind === undefined && backends.every((backend) => backend.probe.kind === undefined)) {
    problems.push(...missingKindProblems(balancer, "probe.kind"));
  }
  for (const backend of backends) {
    const resolved = resolveProbeSettings(balancer.probe, backend.probe);
    if (resolved === undefined) {
      problems.push(...missingKindProblems(backend, `${backend.name("kind")} or probe.kind`));
    }
    problems.push(...kindProblems(backend, resolved?.kind));
    // Timing inherited from a probing balancer block was checked there already.
    const inherited = backend.probe.intervalMs === undefined && backend.probe.timeoutMs === undefined && balancer.probe.kind !== undefined;
    if (!inherited && resolved !== undefined) {
      // Without the defaults, because the default timeout never exceeds the interval.
      problems.push(...timingProblems([backend, balancer], { ...balancer.probe, ...backend.probe, kind: resolved.kind }));
    }
  }
  problems.push(...drainProblems(fromFlags, fromFile));
  if (problems.length === 0) {
    return;
  }

  const more = problems.length > MAX_PROBLEMS ? ` (and ${problems.length - MAX_PROBLEMS} more)` : "";
  const where = configPath === undefined ? "invalid health settings" : `invalid config ${configPath}`;
  throw new ConfigError(`${where}: ${problems.slice(0, MAX_PROBLEMS).join("; ")}${more}`);
}

/** Merges flags over the file field by field, as `resolveHealthSettings` does, keeping each field's name. */
function mergeBlocks(flags: ProbeBlock, file: ProbeBlock): ProbeBlock {
  const probe: ProbeOverrides = { ...file.probe, ...flags.probe, tls: { ...file.probe.tls, ...flags.probe.tls } };
  const fromFlag = (field: ProbeField): boolean => valueOf(flags.probe, field) !== undefined;

  return { probe, name: (field) => (fromFlag(field) ? flags.name(field) : file.name(field)) };
}

function valueOf(probe: ProbeOverrides, field: ProbeField): unknown {
  switch (field) {
    case "interval":
      return probe.intervalMs;
    case "timeout":
      return probe.timeoutMs;
    case "tls":
      return probe.tls !== undefined && Object.keys(probe.tls).length > 0 ? probe.tls : undefined;
    case "tls.ca":
      return probe.tls?.caFile;
    case "tls.cert":
      return probe.tls?.certFile;
    case "tls.key":
      return probe.tls?.keyFile;
    default:
      return probe[field];
  }
}

function fileProblems(block: ProbeBlock): string[] {
  const files: [ProbeField, string | undefined, "pem" | "token"][] = [
    ["tls.ca", block.probe.tls?.caFile, "pem"],
    ["tls.cert", block.probe.tls?.certFile, "pem"],
    ["tls.key", block.probe.tls?.keyFile, "pem"],
    ["bearerTokenFile", block.probe.bearerTokenFile, "token"],
  ];

  return files.flatMap(([field, path, kind]) => {
    const problem = path === undefined ? undefined : checkFile(path, kind);

    return problem === undefined ? [] : [`${block.name(field)}${backendLabel(block)}: ${problem}`];
  });
}

/**
 * Reads a probe file once and returns what is wrong with it, in words, or undefined. A
 * relative path is named with the working folder it was resolved against.
 */
function checkFile(path: string, kind: "pem" | "token"): string | undefined {
  const pathText = isAbsolute(path) ? path : `${path} (relative to the working folder ${process.cwd()})`;
  let text: string;
  try {
    text = readRegularFile(path, kind === "pem" ? MAX_PEM_FILE_BYTES : MAX_TOKEN_FILE_BYTES).toString("utf8");
  } catch (error) {
    return `cannot read ${pathText}: ${describeFileError(error)}`;
  }
  if (kind === "pem" && !text.includes("-----BEGIN ")) {
    return `${pathText} contains no PEM block (a line such as -----BEGIN CERTIFICATE-----)`;
  }
  const token = text.trim();
  if (kind === "token" && (token === "" || /[\r\n]/.test(token))) {
    return `${pathText} must contain the token on one line`;
  }

  return undefined;
}

/**
 * Reports probe fields set in a block that runs no probe, because neither it nor the
 * block it inherits from sets a kind. `kindSetting` names the config key of the kind; when
 * only flags set the fields, the fix names `--probe` instead.
 */
function missingKindProblems(block: ProbeBlock, kindSetting: string): string[] {
  const set = KIND_DEPENDENT_FIELDS.filter((field) => valueOf(block.probe, field) !== undefined);
  if (set.length === 0) {
    return [];
  }
  const names = set.map((field) => block.name(field));
  let kinds: ProbeKind[] = ["tcp", "http", "https"];
  if (set.includes("tls")) {
    kinds = ["https"];
  } else if (set.some((field) => field === "path" || field === "expectStatus" || field === "bearerTokenFile")) {
    kinds = ["http", "https"];
  }
  const fix = names.every((name) => name.startsWith("--"))
    ? `add ${joinWords(kinds.map((kind) => `--probe ${kind}`), "or")}`
    : `set ${kindSetting} to ${joinWords(kinds, "or")}`;
  const subject = `${names.join(", ")}${backendLabel(block)} ${names.length === 1 ? "is" : "are"} set`;

  return [`${subject}, but no probe runs without a probe kind; ${fix}, or remove ${names.length === 1 ? "it" : "them"}`];
}

/** Reports a drain timeout that has no effect because the removal policy is not drain. */
function drainProblems(fromFlags: HealthConfig | undefined, fromFile: HealthConfig | undefined): string[] {
  const policy = fromFlags?.onRemoval ?? fromFile?.onRemoval ?? HEALTH_DEFAULTS.onRemoval;
  const setting = fromFlags?.drainTimeoutMs !== undefined ? "--drain-timeout" : fromFile?.drainTimeoutMs !== undefined ? "drainTimeout" : undefined;
  if (setting === undefined || policy === "drain") {
    return [];
  }
  const fix = setting === "--drain-timeout" ? "add --on-removal drain" : "set onRemoval to drain";

  return [`${setting} applies only when removed targets drain, but the removal policy is ${policy}; ${fix}, or remove ${setting}`];
}

/** Fields set in `block` that a probe of `kind` does not use. */
function kindProblems(block: ProbeBlock, kind: ProbeKind | undefined): string[] {
  if (kind === undefined) {
    return [];
  }
  const unused = (["path", "expectStatus", "bearerTokenFile", "tls"] as const).filter((field) => !probeFieldApplies(field, kind));
  const usedBy = (field: ProbeField): string => (field === "tls" ? "https probes" : "http and https probes");

  return unused
    .filter((field) => valueOf(block.probe, field) !== undefined)
    .map((field) => `${block.name(field)}${backendLabel(block)} applies to ${usedBy(field)} only, but the probe kind is ${kind}; remove it or change the kind`);
}

/**
 * Reports a timeout longer than the interval of a probe that runs. `blocks` lists where the
 * two fields may come from, the most specific first.
 */
function timingProblems(blocks: ProbeBlock[], probe: ProbeOverrides | undefined): string[] {
  if (probe?.kind === undefined) {
    return [];
  }
  // Only a timeout that is set is checked, because the default is capped at the interval.
  const intervalMs = probe.intervalMs ?? PROBE_DEFAULTS.intervalMs;
  const timeoutMs = probe.timeoutMs;
  if (timeoutMs === undefined || timeoutMs <= intervalMs) {
    return [];
  }
  const source = (field: "interval" | "timeout"): string => {
    const block = blocks.find((candidate) => valueOf(candidate.probe, field) !== undefined);

    return block === undefined ? "the default" : block.name(field);
  };

  // A backend's block is named once in front, so that no field name carries a second pair of brackets.
  const backend = blocks[0]?.backend === undefined ? "" : `${blocks[0].backend.path}${backendLabel(blocks[0])}: `;

  return [
    `${backend}the probe timeout ${formatDuration(timeoutMs)} (${source("timeout")}) is longer than its interval ${formatDuration(intervalMs)} (${source("interval")}); use a timeout of at most the interval`,
  ];
}
