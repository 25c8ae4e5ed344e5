import { type AdminCommandOutput, PROCESS_OUTPUT, requestAdmin, runAdminCommand } from "./admin-client.ts";
import type { CliOptions } from "./cli.ts";
import type { ConfigView, SettingEntry } from "./config-view.ts";
import { escapeControlCharacters } from "./logger.ts";
import { ADMIN_CLIENT_OPTIONS_HELP } from "./provider-flags.ts";
import { formatSettingValue, type SettingValue } from "./probe-fields.ts";
import { yamlScalar } from "./yaml-scalar.ts";
import { joinWords } from "./word-lists.ts";

/** Help lines of `tinylb config` in the main help. */
export const CONFIG_HELP = `  tinylb config [--admin ADDR] [--admin-token-file FILE] [--json]
                                  print the settings a running balancer uses, and where each came from`;

/** Help text printed by `tinylb config --help`. */
export const CONFIG_COMMAND_HELP = `tinylb config: print the settings a running balancer uses

Usage:
  tinylb config [--admin ADDR] [--admin-token-file FILE] [--json]

Requests GET /v1/config from the balancer's admin API and prints every setting in effect
after flags, the config file and reloads, by its config file key, with its source: flag,
file or default. Then it lists the backends that set their own probe, slowStart or
proxyProtocol in the config file. Files are named by path, so no token, key or certificate
is printed.

Options:
${ADMIN_CLIENT_OPTIONS_HELP}

Exit status: 0 when the settings were printed, 1 when no balancer responds or it responds
with an error, 2 for a bad command line.`;

/**
 * Runs `tinylb config`: requests `GET /v1/config` from a running balancer's admin API and
 * prints a table of settings (or with `--json`, the JSON response). Returns the exit code as
 * `runAdminCommand` does.
 */
export function runConfigCommand(cli: CliOptions, output: AdminCommandOutput = PROCESS_OUTPUT): Promise<number> {
  return runAdminCommand("config", cli, output, async (admin, tokenFile) => {
    const view = (await requestAdmin(admin, tokenFile, "GET", "/v1/config")) as ConfigView;

    return cli.json ? JSON.stringify(view, null, 2) + "\n" : formatConfigView(view);
  });
}

/**
 * Formats the settings as a table of key, value and source, then one of the backends' own
 * settings. Control characters in the response are written as their JSON escapes, as in
 * `tinylb status`.
 */
export function formatConfigView(view: ConfigView): string {
  const lines = [`Config file: ${view.configFile ?? "none"}`];
  if (view.pendingRestart.length > 0) {
    lines.push(`Restart needed: the config file changes ${joinWords(view.pendingRestart, "and")}; the values below stay until tinylb restarts`);
  }
  lines.push("", ...formatTable(["SETTING", "VALUE", "SOURCE"], view.settings.map(settingCells)));

  const overrides = view.backendOverrides.flatMap((backend) => backend.settings.map((entry) => [backend.id, entry.key, formatFileValue(entry.value)]));
  lines.push("");
  if (overrides.length === 0) {
    lines.push("Backend overrides: none (no backend sets its own probe, slowStart, proxyProtocol or disabled)");
  } else {
    lines.push("Backend overrides (backends[] in the config file):", ...formatTable(["ID", "SETTING", "VALUE"], overrides));
  }

  return lines.join("\n") + "\n";
}

function settingCells(entry: SettingEntry): string[] {
  return [entry.key, formatFileValue(entry.value), entry.source];
}

/**
 * Formats a value as a YAML config file would write it. A list becomes a flow list such as
 * `[127.0.0.1:7443, "[::1]:7443"]`, and a string or list item is quoted where YAML would
 * misread it. An unset value is `none`, which the file writes by leaving the key out.
 */
function formatFileValue(value: SettingValue): string {
  if (typeof value === "string") {
    return yamlScalar(value);
  }
  if (!Array.isArray(value) || value.length === 0) {
    return formatSettingValue(value);
  }

  return `[${value.map((item) => (typeof item === "string" ? yamlScalar(item) : String(item))).join(", ")}]`;
}

/** Lays out rows under a header in columns padded to the widest cell, escaped first so that they line up as printed. */
function formatTable(header: string[], rows: string[][]): string[] {
  const cells = [header, ...rows].map((row) => row.map(escapeControlCharacters));
  const widths = header.map((_, column) => Math.max(...cells.map((row) => row[column]!.length)));

  return cells.map((row) => row.map((cell, column) => cell.padEnd(widths[column]!)).join("  ").trimEnd());
}
