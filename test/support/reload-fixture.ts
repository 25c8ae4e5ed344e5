import { parseArgs } from "../../src/cli.ts";
import { loadConfigFile } from "../../src/config.ts";
import { Logger } from "../../src/logger.ts";
import { applyReloadedSettings } from "../../src/reload-settings.ts";
import { Server } from "../../src/server.ts";
import { resolveSettings, type Settings } from "../../src/settings.ts";

/** A server built from a config file and flags, not bound, whose config can be reloaded as SIGHUP does. */
export interface ReloadFixture {
  settings: Settings;
  server: Server;
  /** Log lines of every reload. */
  lines: string[];
  /** Applies the config in the file at `path`, as a reload does, and returns the settings that wait for a restart. */
  reload(path: string): string[];
}

/**
 * Resolves the settings of `--config path` plus `flags` and builds a server with the live
 * settings a start passes (balance, PROXY protocol, idle timeout, slow start), without binding
 * it. The caller shuts the server down when the idle timeout may be on.
 */
export function reloadFixture(path: string, flags: string[] = []): ReloadFixture {
  const cli = parseArgs(["--config", path, ...flags]);
  const settings = resolveSettings(cli);
  const lines: string[] = [];
  const logger = new Logger({ sink: (line) => lines.push(line) });
  const server = new Server({ listen: settings.listen, logger, balance: settings.balance, proxyProtocol: settings.proxyProtocol, idleTimeoutMs: settings.idleTimeoutMs, slowStart: settings.slowStart });

  const restartChanges = new Set<string>();

  return { settings, server, lines, reload: (next) => applyReloadedSettings(loadConfigFile(next), cli, settings, server, logger, restartChanges) };
}
