import { formatDuration } from "./duration.ts";
import { formatSettingValue, PROBE_FIELD_DEFAULTS, probeFields, type SettingValue } from "./probe-fields.ts";
import { defaultProbeTimeoutMs, PROBE_DEFAULTS, type ProbeOverrides } from "./probes/probe.ts";

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
 * one side leaves unset reads as its default there, and the kind as `off`. A timeout that the
 * new probe leaves unset follows the interval (see `defaultProbeTimeoutMs`), and its change is
 * marked, such as `probe.timeout=2s->1s (follows probe.interval)`.
 */
export function probeChanges(before: ProbeOverrides | undefined, after: ProbeOverrides | undefined): string[] {
  const old = probeFields(before);
  const next = probeFields(after);

  return [...PROBE_FIELD_DEFAULTS].flatMap(([name, fallback]) => {
    if (name === "timeout") {
      return followedTimeoutChange("probe.timeout", "probe.interval", { shared: before }, { shared: after }) ?? timeoutChange("probe.timeout", { shared: before }, { shared: after });
    }

    return changedValue(`probe.${name}`, old.get(name) ?? fallback, next.get(name) ?? fallback);
  });
}

/**
 * Describes each changed key of a backend's own probe, such as `probe.fall of api-1=unset->2`.
 * A key that one side leaves unset reads `unset`, since the backend then takes the shared
 * probe's value. When the backend's own interval changes and no probe sets a timeout after the
 * reload, the backend's timeout follows that interval, so its change is listed with both values
 * in effect and marked, such as `probe.timeout of api-1=2s->1s (follows probe.interval of api-1)`.
 *
 * @param shared the shared probe before and after the reload, which fills in the keys that the
 *   backend leaves unset.
 */
export function backendProbeChanges(
  id: string,
  before: ProbeOverrides | undefined,
  after: ProbeOverrides | undefined,
  shared: { before: ProbeOverrides | undefined; after: ProbeOverrides | undefined },
): string[] {
  const old = probeFields(before);
  const next = probeFields(after);
  const ownIntervalChanged = old.get("interval") !== next.get("interval");

  return [...PROBE_FIELD_DEFAULTS.keys()].flatMap((name) => {
    const key = `probe.${name} of ${id}`;
    if (name === "timeout" && ownIntervalChanged) {
      const followed = followedTimeoutChange(key, `probe.interval of ${id}`, { shared: shared.before, backend: before }, { shared: shared.after, backend: after });
      if (followed !== undefined) {
        return followed;
      }
    }

    return changedValue(key, old.get(name) ?? "unset", next.get(name) ?? "unset");
  });
}

/** The shared probe and, for a backend, the backend's own probe, whose keys win. */
interface ProbeLayers {
  shared: ProbeOverrides | undefined;
  backend?: ProbeOverrides | undefined;
}

function intervalMsOf(layers: ProbeLayers): number {
  return layers.backend?.intervalMs ?? layers.shared?.intervalMs ?? PROBE_DEFAULTS.intervalMs;
}

function timeoutMsOf(layers: ProbeLayers): number {
  return layers.backend?.timeoutMs ?? layers.shared?.timeoutMs ?? defaultProbeTimeoutMs(intervalMsOf(layers));
}

/** Returns the change of the timeout in effect, or nothing when it stayed. */
function timeoutChange(key: string, before: ProbeLayers, after: ProbeLayers): string[] {
  return changedValue(key, formatDuration(timeoutMsOf(before)), formatDuration(timeoutMsOf(after)));
}

/**
 * Describes the change of a timeout that follows the interval, marked as such. The timeout
 * follows when no layer sets one after the reload and the interval's change moved the default.
 * Returns undefined when it does not follow, and an empty list when the timeout in effect
 * stayed, such as a set 1s that became the default 1s.
 */
function followedTimeoutChange(key: string, intervalKey: string, before: ProbeLayers, after: ProbeLayers): string[] | undefined {
  const setAfter = after.backend?.timeoutMs ?? after.shared?.timeoutMs;
  if (setAfter !== undefined || defaultProbeTimeoutMs(intervalMsOf(before)) === defaultProbeTimeoutMs(intervalMsOf(after))) {
    return undefined;
  }

  return timeoutChange(key, before, after).map((change) => `${change} (follows ${intervalKey})`);
}

/** Returns the change of one key, or nothing when both values format the same. */
function changedValue(key: string, before: SettingValue, after: SettingValue): string[] {
  return formatSettingValue(before) === formatSettingValue(after) ? [] : [describeChange(key, before, after)];
}
