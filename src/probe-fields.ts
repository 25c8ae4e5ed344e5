import { formatDuration } from "./duration.ts";
import type { ProbeKind, ProbeOverrides } from "./probes/probe.ts";
import { PROBE_DEFAULTS } from "./probes/probe.ts";

/**
 * A setting's value as a config file writes it: a duration such as `"5s"`, a number, a
 * boolean, a list, or null for a path or name that is not set.
 */
export type SettingValue = string | number | boolean | null | readonly (string | number)[];

/**
 * The value of each probe key when neither a flag nor the file sets it, by its key under
 * `probe`. A null path or name means none: the runtime's CA list, the target host as server
 * name, and no client certificate or bearer token.
 */
export const PROBE_FIELD_DEFAULTS: ReadonlyMap<string, SettingValue> = new Map<string, SettingValue>([
  ["kind", "off"],
  ["interval", formatDuration(PROBE_DEFAULTS.intervalMs)],
  ["timeout", formatDuration(PROBE_DEFAULTS.timeoutMs)],
  ["rise", PROBE_DEFAULTS.rise],
  ["fall", PROBE_DEFAULTS.fall],
  ["path", PROBE_DEFAULTS.path],
  ["expectStatus", PROBE_DEFAULTS.expectStatus],
  ["tls.ca", null],
  ["tls.insecureSkipVerify", false],
  ["tls.serverName", null],
  ["tls.cert", null],
  ["tls.key", null],
  ["bearerTokenFile", null],
]);

/**
 * Returns true when a probe of `kind` uses the key `name` under `probe`, such as `path`,
 * `tls.ca`, or `tls` for the whole block. Only https uses `tls`, and only http and https use
 * the request keys `path`, `expectStatus` and `bearerTokenFile`. The config check rejects
 * a key that the kind does not use.
 */
export function probeFieldApplies(name: string, kind: ProbeKind): boolean {
  if (name === "tls" || name.startsWith("tls.")) {
    return kind === "https";
  }
  if (name === "path" || name === "expectStatus" || name === "bearerTokenFile") {
    return kind !== "tcp";
  }

  return true;
}

/**
 * Lists the probe keys that `probe` sets, by their config file names under `probe` (such as
 * `interval` and `tls.ca`), in the order of PROBE_FIELD_DEFAULTS. It reads no file, so a
 * token, key or certificate appears by its path only.
 */
export function probeFields(probe: ProbeOverrides | undefined): Map<string, SettingValue> {
  const tls = probe?.tls;
  const values: [string, SettingValue | undefined][] = [
    ["kind", probe?.kind],
    ["interval", probe?.intervalMs === undefined ? undefined : formatDuration(probe.intervalMs)],
    ["timeout", probe?.timeoutMs === undefined ? undefined : formatDuration(probe.timeoutMs)],
    ["rise", probe?.rise],
    ["fall", probe?.fall],
    ["path", probe?.path],
    ["expectStatus", probe?.expectStatus],
    ["tls.ca", tls?.caFile],
    ["tls.insecureSkipVerify", tls?.insecureSkipVerify],
    ["tls.serverName", tls?.serverName],
    ["tls.cert", tls?.certFile],
    ["tls.key", tls?.keyFile],
    ["bearerTokenFile", probe?.bearerTokenFile],
  ];

  return new Map(values.filter((entry): entry is [string, SettingValue] => entry[1] !== undefined));
}

/** Formats a setting's value for a log line or a table: a list as `a,b`, and null or an empty list as `none`. */
export function formatSettingValue(value: SettingValue): string {
  if (value === null || (Array.isArray(value) && value.length === 0)) {
    return "none";
  }

  return Array.isArray(value) ? value.join(",") : String(value);
}
