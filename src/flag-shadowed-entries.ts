import type { CliOptions } from "./cli.ts";
import type { FileConfig } from "./config.ts";
import type { Logger } from "./logger.ts";

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

/**
 * Lists the keys of each file entry that a `--backend` flag replaces and that do not apply
 * for that reason, such as `probe,slowStart` by id. The `disabled` key is left out, because
 * ConfigDisabledMarks warns about it.
 */
export function flagShadowedKeys(file: FileConfig, cli: CliOptions): Map<string, string[]> {
  const shadowed = new Map<string, string[]>();
  for (const id of flagShadowedIds(file, cli)) {
    const keys = [
      file.health?.probeOverrides?.has(id) === true ? "probe" : undefined,
      file.backendProxyProtocols?.has(id) === true ? "proxyProtocol" : undefined,
      file.backendSlowStarts?.has(id) === true ? "slowStart" : undefined,
    ].filter((key) => key !== undefined);
    if (keys.length > 0) {
      shadowed.set(id, keys);
    }
  }

  return shadowed;
}

/**
 * Warns about the keys of file entries that `--backend` flags replace: at start, in
 * `tinylb check`, and at each reload whose ignored keys of an id differ from the reload before.
 */
export class FlagShadowedKeysLog {
  readonly #log: Logger;
  readonly #cli: CliOptions;
  /** The ignored keys of the config applied last, as `ID:KEY,KEY`. */
  #reported = new Set<string>();

  constructor(cli: CliOptions, logger: Logger) {
    this.#cli = cli;
    this.#log = logger.with({ component: "file-provider" });
  }

  /** Logs one warning for each id whose ignored keys in `file` were not reported for the config before. */
  report(file: FileConfig): void {
    const reported = new Set<string>();
    for (const [id, keys] of flagShadowedKeys(file, this.#cli)) {
      const entry = `${id}:${keys.join(",")}`;
      reported.add(entry);
      if (!this.#reported.has(entry)) {
        this.#log.warn("backend keys in the config file ignored: a --backend flag with the same id replaces the entry; drop the keys, or the flag to use the file's entry", { backend: id, keys: keys.join(",") });
      }
    }
    this.#reported = reported;
  }
}
