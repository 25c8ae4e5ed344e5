import { resolve } from "node:path";
import type { ReloadResult } from "./providers/file-provider.ts";
import { buildCommit, VERSION } from "./version.ts";

/** The process part of `tinylb status`: which build runs, since when, and with which config file. */
export interface ProcessStatus {
  version: string;
  commit: string;
  pid: number;
  /** Start time of the process, in ISO 8601 (UTC). */
  startedAt: string;
  uptimeMs: number;
  /** Absolute path of the `--config` file; absent without one. */
  configFile?: string;
  /** The latest config reload after start; absent without a config file or before the first reload. */
  lastReload?: ReloadResult;
  /** Settings changed in the config file that keep their running values until a restart, such as `listen`. Absent when none. */
  pendingRestart?: string[];
}

/**
 * Collects the process status. `file` is the config file provider, when there is one, and
 * `pendingRestart` the settings of its last applied read that wait for a restart.
 */
export function collectProcessStatus(file?: { readonly path: string; readonly lastReload: ReloadResult | undefined }, pendingRestart: readonly string[] = []): ProcessStatus {
  const startedMs = performance.timeOrigin;
  const status: ProcessStatus = {
    version: VERSION,
    commit: buildCommit(),
    pid: process.pid,
    startedAt: new Date(startedMs).toISOString(),
    uptimeMs: Math.max(0, Math.round(Date.now() - startedMs)),
  };
  if (file !== undefined) {
    status.configFile = resolve(file.path);
  }
  if (file?.lastReload !== undefined) {
    status.lastReload = file.lastReload;
  }
  if (pendingRestart.length > 0) {
    status.pendingRestart = [...pendingRestart];
  }

  return status;
}
