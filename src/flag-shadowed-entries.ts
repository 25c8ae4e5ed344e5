import type { CliOptions } from "./cli.ts";
import type { FileConfig } from "./config.ts";

/**
 * Returns the ids of the config file's backend entries that a `--backend` flag gives too, in
 * file order. The flag's backend takes such an entry's place in the set, with the entry's
 * target or another.
 */
export function flagShadowedIds(file: FileConfig, cli: CliOptions): string[] {
  const flagIds = new Set(cli.backends.map((backend) => backend.id));

  return (file.backends ?? []).map((backend) => backend.id).filter((id) => flagIds.has(id));
}

/**
 * Returns `file` without the `probe`, `proxyProtocol` and `slowStart` keys of the backend
 * entries that a `--backend` flag replaces, since those keys belong to a backend that is not
 * in the set. The `disabled` key stays, because ConfigDisabledMarks ignores it with a warning.
 * The keys are still validated with the rest of the file, so a file that a start rejects
 * without the flag is rejected with it too.
 */
export function withoutFlagShadowedKeys(file: FileConfig, cli: CliOptions): FileConfig {
  const shadowed = new Set(flagShadowedIds(file, cli));
  if (shadowed.size === 0) {
    return file;
  }

  const withoutShadowed = <T>(byId: ReadonlyMap<string, T> | undefined): Map<string, T> | undefined =>
    byId === undefined ? undefined : new Map([...byId].filter(([id]) => !shadowed.has(id)));
  const health = file.health === undefined ? undefined : { ...file.health, probeOverrides: withoutShadowed(file.health.probeOverrides), probeOverridePaths: withoutShadowed(file.health.probeOverridePaths) };

  return { ...file, health, backendProxyProtocols: withoutShadowed(file.backendProxyProtocols), backendSlowStarts: withoutShadowed(file.backendSlowStarts) };
}
