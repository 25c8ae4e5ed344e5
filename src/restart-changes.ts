import type { CliOptions } from "./cli.ts";
import type { FileConfig } from "./config.ts";
import { collectConfigView, type SettingEntry } from "./config-view.ts";
import { resolveHealthSettings } from "./health-config.ts";
import type { SettingValue } from "./probe-fields.ts";
import { resolveProviderSettings } from "./provider-settings.ts";
import { describeChange } from "./setting-changes.ts";
import { DEFAULTS, type Settings } from "./settings.ts";

/**
 * Describes each changed key of the settings in `restart` (config file keys that apply only at
 * a restart, such as `listen` or `dns`) as `KEY=OLD->NEW`, with its running value and the value
 * of the re-read `config`. A section is named key by key (`dns.names=a:53->b:53`), and a key
 * of a section that one side does not have reads `none` there, as an unset key does.
 *
 * The values are written as `tinylb config` shows them, so files are named by path and never
 * by content. No restart key contains a secret, because an etcd endpoint with a user name or
 * password is rejected when the file is read.
 */
export function describeRestartChanges(restart: readonly string[], config: FileConfig, cli: CliOptions, settings: Settings): string[] {
  if (restart.length === 0) {
    return [];
  }

  const running = settingValues(settings, cli, config);
  const next = settingValues(restartValuesOf(config, cli, settings), cli, config);

  return restart.flatMap((name) => {
    const inSection = (key: string): boolean => key === name || key.startsWith(`${name}.`);
    const keys = [...new Set([...running.keys(), ...next.keys()])].filter(inSection);
    const changes = keys.flatMap((key) => {
      const before = running.get(key) ?? null;
      const after = next.get(key) ?? null;

      return JSON.stringify(before) === JSON.stringify(after) ? [] : [describeChange(key, before, after)];
    });

    // A change that the shown values do not reveal still names its key, so no changed setting goes unreported.
    return changes.length > 0 ? changes : [name];
  });
}

/** Returns `settings` with the restart settings that `config` and the flags give in place of the running ones. */
function restartValuesOf(config: FileConfig, cli: CliOptions, settings: Settings): Settings {
  const health = resolveHealthSettings(cli.health, config.health);

  return {
    ...settings,
    listen: cli.listen.length > 0 ? cli.listen : (config.listen ?? settings.listen),
    maxConnections: cli.maxConnections ?? config.maxConnections ?? DEFAULTS.maxConnections,
    maxConnectionsPerBackend: cli.maxConnectionsPerBackend ?? config.maxConnectionsPerBackend ?? DEFAULTS.maxConnectionsPerBackend,
    workers: cli.workers ?? config.workers ?? DEFAULTS.workers,
    health: { ...settings.health, maxAttempts: health.maxAttempts, onRemoval: health.onRemoval, drainTimeoutMs: health.drainTimeoutMs, onUnhealthy: health.onUnhealthy },
    providers: resolveProviderSettings(cli.providers ?? {}, config.providers),
    kubernetes: config.kubernetes,
    etcd: config.etcd,
  };
}

/** Returns the value of every setting of `settings` as `tinylb config` shows it, by key. */
function settingValues(settings: Settings, cli: CliOptions, config: FileConfig): Map<string, SettingValue> {
  const view = collectConfigView(settings, cli, { atStart: config, applied: config }, []);

  return new Map(view.settings.map((entry: SettingEntry) => [entry.key, entry.value]));
}
