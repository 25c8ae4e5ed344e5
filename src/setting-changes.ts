import { formatSettingValue, PROBE_FIELD_DEFAULTS, probeFields, type SettingValue } from "./probe-fields.ts";
import type { ProbeOverrides } from "./probes/probe.ts";

/**
 * Describes one changed setting for the reload line, as `KEY=OLD->NEW`, such as
 * `probe.fall=3->2`. A value with a space, `=` or `->` in it is written as a JSON string, so
 * the changes of one line stay apart.
 */
export function describeChange(key: string, before: SettingValue, after: SettingValue): string {
  return `${key}=${quoteValue(formatSettingValue(before))}->${quoteValue(formatSettingValue(after))}`;
}

function quoteValue(text: string): string {
  return /\s|=|->|"/.test(text) ? JSON.stringify(text) : text;
}

/**
 * Describes each changed key of the shared probe, such as `probe.interval=2s->1s`. A key that
 * one side leaves unset reads as its default there, and the kind as `off`.
 */
export function probeChanges(before: ProbeOverrides | undefined, after: ProbeOverrides | undefined): string[] {
  const old = probeFields(before);
  const next = probeFields(after);

  return [...PROBE_FIELD_DEFAULTS].flatMap(([name, fallback]) => changedValue(`probe.${name}`, old.get(name) ?? fallback, next.get(name) ?? fallback));
}

/**
 * Describes each changed key of a backend's own probe, such as `probe.fall of api-1=unset->2`.
 * A key that one side leaves unset reads `unset`, since the backend then takes the shared
 * probe's value.
 */
export function backendProbeChanges(id: string, before: ProbeOverrides | undefined, after: ProbeOverrides | undefined): string[] {
  const old = probeFields(before);
  const next = probeFields(after);

  return [...PROBE_FIELD_DEFAULTS.keys()].flatMap((name) => changedValue(`probe.${name} of ${id}`, old.get(name) ?? "unset", next.get(name) ?? "unset"));
}

/** Returns the change of one key, or nothing when both values format the same. */
function changedValue(key: string, before: SettingValue, after: SettingValue): string[] {
  return formatSettingValue(before) === formatSettingValue(after) ? [] : [describeChange(key, before, after)];
}
