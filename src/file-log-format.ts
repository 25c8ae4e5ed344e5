import { MAX_CONFIG_BYTES } from "./config.ts";
import { LOG_FORMATS, type LogFormat } from "./logger.ts";
import { readRegularFile } from "./regular-file.ts";

/**
 * Returns the `logFormat` of a config file that parses as YAML, even when the file fails
 * validation, so a start that fails on it still logs its error in the format the file asks
 * for. Returns undefined when the file cannot be read or parsed, or its logFormat is missing
 * or invalid.
 */
export function readFileLogFormat(path: string): LogFormat | undefined {
  let parsed: unknown;
  try {
    parsed = Bun.YAML.parse(readRegularFile(path, MAX_CONFIG_BYTES).toString("utf8"));
  } catch {
    return undefined;
  }
  if (typeof parsed !== "object" || parsed === null || !("logFormat" in parsed)) {
    return undefined;
  }

  const format = parsed.logFormat;

  return LOG_FORMATS.find((known) => known === format);
}
