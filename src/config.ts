import { extname } from "node:path";
import { z } from "zod";
import { type Address, AddressError, parseListenAddress } from "./address.ts";
import { type Backend, BackendError, createBackend } from "./backend.ts";
import { BALANCE_MODES, type BalanceMode } from "./backend-selector.ts";
import { formatDuration, parseDuration } from "./duration.ts";
import { type DuplicateKey, findDuplicateJsonKey } from "./duplicate-keys.ts";
import { configFolderHint } from "./config-folder-hint.ts";
import { describeFileError } from "./file-errors.ts";
import { readRegularFile } from "./regular-file.ts";
import { findDuplicateYamlKey } from "./yaml-duplicate-keys.ts";
import { yamlAddressHint } from "./yaml-address-hint.ts";
import { parseIdleTimeout } from "./idle-timeout.ts";
import { checkDialBackoff, type HealthConfig, healthConfigOf, healthFileKeys, probeSchema } from "./health-config.ts";
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from "./logger.ts";
import { type ProviderFileConfig, providerFileKeys, toProviderFileConfig } from "./provider-settings.ts";
import { PROXY_PROTOCOL_MODES, type ProxyProtocolMode } from "./proxy-protocol.ts";
import { parseSlowStart } from "./slow-start-setting.ts";
import { type ExampleSyntax, formatFieldPath, isDateTime, issueMessageIn } from "./zod-messages.ts";
import { nonFiniteNumberProblems } from "./non-finite-numbers.ts";
import { describeList, namesValue } from "./rejected-value.ts";
import { clusterProviderFileKeys, type EtcdSettings, type KubernetesSettings } from "./cluster-provider-keys.ts";

/** A config file that cannot be read, parsed or validated; the message names the file, field and value. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Biggest config file read; anything larger is surely not a config. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

// A bare 0 means "off". YAML and TOML read it as a number, so the number 0 is accepted too.
const duration = z.union([z.string(), z.number()]).transform((value, context) => {
  if (typeof value === "number" && value !== 0) {
    context.addIssue({ code: "custom", message: `invalid duration ${value}: add a unit (ms, s, m or h), such as 500ms or 3s` });

    return z.NEVER;
  }
  const text = String(value);
  const result = parseDuration(text);
  if (typeof result === "string") {
    context.addIssue({ code: "custom", message: result });

    return z.NEVER;
  }

  return result;
});

const listenAddress = z.string().transform((text, context) => {
  try {
    return parseListenAddress(text);
  } catch (error) {
    context.addIssue({ code: "custom", message: (error as AddressError).message });

    return z.NEVER;
  }
});

/**
 * Builds the schema of a setting that is `off`, 0 or a duration that `parse` checks, such as
 * `idleTimeout`. The number 0 is accepted too, as in `duration`.
 */
function offOrDuration(parse: (text: string) => number | string) {
  return z.unknown().transform((value, context) => {
    let result: number | string = "expected a duration such as 30s, or off";
    if (typeof value === "string") {
      result = parse(value);
    } else if (typeof value === "number") {
      result = value === 0 ? 0 : `invalid duration ${value}: add a unit (ms, s, m or h), such as ${value}s, or use off`;
    }
    if (typeof result === "string") {
      context.addIssue({ code: "custom", message: result });

      return z.NEVER;
    }

    return result;
  });
}

const idleTimeout = offOrDuration(parseIdleTimeout);

const slowStart = offOrDuration(parseSlowStart);

const backendEntry = z
  .strictObject({ id: z.string(), target: z.string(), probe: probeSchema.optional(), proxyProtocol: z.enum(PROXY_PROTOCOL_MODES).optional(), slowStart: slowStart.optional(), disabled: z.boolean().optional() })
  .transform((entry, context) => {
    try {
      return createBackend(entry.id, entry.target);
    } catch (error) {
      context.addIssue({ code: "custom", message: (error as BackendError).message });

      return z.NEVER;
    }
  });

/** Largest keepalive idle time in seconds: Linux rejects a larger TCP_KEEPIDLE (MAX_TCP_KEEPIDLE). */
export const MAX_KEEPALIVE_SECONDS = 32_767;

/**
 * Checks a keepalive idle time: 0 (off) or whole seconds from 1 s to MAX_KEEPALIVE_SECONDS.
 * TCP_KEEPIDLE is set in whole seconds, so a shorter time would leave the kernel's default in
 * place and a fraction would be rounded. Linux rejects a longer one, and the socket then keeps
 * the kernel's default of 2 hours. Returns the problem.
 */
export function checkKeepalive(ms: number): string | undefined {
  if (ms !== 0 && ms < 1000) {
    return "the keepalive time must be 0 (off) or at least 1s, since the kernel counts it in whole seconds";
  }
  if (ms > MAX_KEEPALIVE_SECONDS * 1000) {
    return `the keepalive time ${formatDuration(ms)} is longer than Linux allows (${MAX_KEEPALIVE_SECONDS}s, about 9 hours); use at most ${MAX_KEEPALIVE_SECONDS}s, or 0 to turn keepalive off`;
  }
  if (ms % 1000 !== 0) {
    const lower = formatDuration(Math.floor(ms / 1000) * 1000);
    const upper = formatDuration(Math.ceil(ms / 1000) * 1000);

    return `the keepalive time ${formatDuration(ms)} is not a whole number of seconds, but the kernel counts whole seconds; use ${lower} or ${upper}`;
  }

  return undefined;
}

/** Upper bound of the connection caps, far above what one process can hold open. */
export const MAX_CONNECTION_CAP = 10_000_000;

const connectionCap = z.int().min(0).max(MAX_CONNECTION_CAP);

/** Upper bound of `--workers` and `workers`, far above the core counts it is meant for. */
export const MAX_WORKERS = 256;

/** The schema of a config file. Unknown keys are errors, so a misspelt key is not silently ignored. */
export const fileSchema = z.strictObject({
  listen: z.union([listenAddress, z.array(listenAddress).min(1)], { error: "expected an address such as 127.0.0.1:7443, or a list of them" }).optional(),
  backends: z.array(backendEntry).max(10_000).optional(),
  connectTimeout: duration.refine((ms) => ms > 0, "use a duration above zero, such as 3s").optional(),
  keepalive: duration.superRefine((ms, context) => {
    const problem = checkKeepalive(ms);
    if (problem !== undefined) {
      context.addIssue({ code: "custom", message: problem, input: formatDuration(ms) });
    }
  }).optional(),
  shutdownGrace: duration.optional(),
  idleTimeout: idleTimeout.optional(),
  maxConnections: connectionCap.optional(),
  maxConnectionsPerBackend: connectionCap.optional(),
  workers: z.int().min(1).max(MAX_WORKERS).optional(),
  balance: z.enum(BALANCE_MODES).optional(),
  proxyProtocol: z.enum(PROXY_PROTOCOL_MODES).optional(),
  slowStart: slowStart.optional(),
  ...healthFileKeys,
  ...providerFileKeys,
  ...clusterProviderFileKeys,
  logLevel: z.enum(LOG_LEVELS).optional(),
  logFormat: z.enum(LOG_FORMATS).optional(),
});

/** Settings read from a config file; absent keys fall back to flags and defaults. */
export interface FileConfig {
  listen?: Address[];
  backends?: Backend[];
  connectTimeoutMs?: number;
  keepaliveMs?: number;
  shutdownGraceMs?: number;
  /** Idle timeout in milliseconds; 0 is off. */
  idleTimeoutMs?: number;
  maxConnections?: number;
  maxConnectionsPerBackend?: number;
  /** Threads that accept and relay. */
  workers?: number;
  /** Balance mode of new clients. */
  balance?: BalanceMode;
  /** Probes, dial back-off, failover and removal policies. */
  health?: HealthConfig;
  /** PROXY protocol mode of every backend (`proxyProtocol`). */
  proxyProtocol?: ProxyProtocolMode;
  /** PROXY protocol modes of single backends by id (`backends[].proxyProtocol`). */
  backendProxyProtocols?: Map<string, ProxyProtocolMode>;
  /** Slow start window of every backend in milliseconds (`slowStart`), or 0 for off. */
  slowStartMs?: number;
  /** Slow start windows of single backends by id, in milliseconds (`backends[].slowStart`). */
  backendSlowStarts?: Map<string, number>;
  /** Ids of the backends marked `disabled: true`, which get no new clients (`backends[].disabled`). */
  disabledBackends?: string[];
  /** The admin API, the metrics server, the config watch, the state file and DNS. */
  providers?: ProviderFileConfig;
  /** The Kubernetes provider: kubeconfig or in-cluster access. */
  kubernetes?: KubernetesSettings;
  /** The etcd provider: members and key prefix. */
  etcd?: EtcdSettings;
  logLevel?: LogLevel;
  logFormat?: LogFormat;
}

/**
 * Reads and validates a config file, choosing the parser by extension:
 * `.yaml`/`.yml`, `.json`/`.jsonc` or `.toml`.
 *
 * @throws {ConfigError} naming the file, and for invalid content the field path, the
 *   value and what is valid.
 */
export function loadConfigFile(path: string): FileConfig {
  return loadConfigText(path, readConfigText(path));
}

/**
 * Parses and validates the text of config file `path`, as `readConfigText` read it. A caller
 * that reads once and passes the text here and to `settingKeyPaths` gets the settings, the
 * backends and the key paths of the same bytes.
 *
 * @throws {ConfigError} naming the file, and for invalid content the field path, the value and
 *   what is valid.
 */
export function loadConfigText(path: string, text: string): FileConfig {
  return validateConfig(path, parseConfigText(path, text), text);
}

/**
 * Validates parsed config data. `text`, the file's text, lets a message quote a number such as
 * `1e400` as written, where the parser read it as Infinity.
 *
 * @throws {ConfigError} naming each invalid field.
 */
export function validateConfig(path: string, data: unknown, text?: string): FileConfig {
  const nonFinite = nonFiniteNumberProblems(data, fileSchema, text, (field) => `${formatFieldPath(field, "(top level)")}${backendIdOf(field, data)}`);
  if (nonFinite.length > 0) {
    const more = nonFinite.length > 5 ? ` (and ${nonFinite.length - 5} more)` : "";
    throw new ConfigError(`invalid config ${path}: ${nonFinite.slice(0, 5).join("; ")}${more}`);
  }

  const syntax = exampleSyntaxOf(path);
  const result = fileSchema.safeParse(data ?? {}, { reportInput: true, error: (issue) => issueMessageIn(syntax, issue) });
  if (!result.success) {
    const issues = withoutLooserBounds(result.error.issues);
    const problems = issues.slice(0, 5).map((issue) => describeIssue(issue, data));
    const more = issues.length > 5 ? ` (and ${issues.length - 5} more)` : "";
    throw new ConfigError(`invalid config ${path}: ${problems.join("; ")}${more}`);
  }

  const file = result.data;
  const backends = file.backends;
  if (backends !== undefined) {
    checkUniqueIds(path, backends);
  }
  const rawBackends = (data as { backends?: unknown } | null)?.backends;
  const health = healthConfigOf(file, rawBackends);
  const backoffProblem = checkDialBackoff(health);
  if (backoffProblem !== undefined) {
    throw new ConfigError(`invalid config ${path}: ${backoffProblem}`);
  }

  return {
    listen: file.listen === undefined ? undefined : Array.isArray(file.listen) ? file.listen : [file.listen],
    backends,
    connectTimeoutMs: file.connectTimeout,
    keepaliveMs: file.keepalive,
    shutdownGraceMs: file.shutdownGrace,
    idleTimeoutMs: file.idleTimeout,
    maxConnections: file.maxConnections,
    maxConnectionsPerBackend: file.maxConnectionsPerBackend,
    workers: file.workers,
    balance: file.balance,
    health,
    proxyProtocol: file.proxyProtocol,
    backendProxyProtocols: backendValuesOf(rawBackends, "proxyProtocol", (mode) => mode as ProxyProtocolMode),
    slowStartMs: file.slowStart,
    backendSlowStarts: backendValuesOf(rawBackends, "slowStart", (window) => slowStart.parse(window)),
    disabledBackends: disabledIdsOf(rawBackends),
    providers: toProviderFileConfig(file),
    kubernetes: file.kubernetes,
    etcd: file.etcd,
    logLevel: file.logLevel,
    logFormat: file.logFormat,
  };
}

/**
 * Reads one setting of single backends (`backends[].proxyProtocol`, `slowStart` or `disabled`)
 * from the file's `backends` list, already validated, by backend id. `read` turns the value as
 * written into the setting.
 */
function backendValuesOf<T>(rawBackends: unknown, key: "proxyProtocol" | "slowStart" | "disabled", read: (value: unknown) => T): Map<string, T> {
  const values = new Map<string, T>();
  if (Array.isArray(rawBackends)) {
    for (const entry of rawBackends as ({ id: string } & Record<string, unknown>)[]) {
      if (entry[key] !== undefined) {
        values.set(entry.id, read(entry[key]));
      }
    }
  }

  return values;
}

/** Returns the ids of the file's backends marked `disabled: true`, in file order. */
function disabledIdsOf(rawBackends: unknown): string[] {
  const marks = backendValuesOf(rawBackends, "disabled", (disabled) => disabled === true);

  return [...marks].filter(([, disabled]) => disabled).map(([id]) => id);
}

/**
 * Returns the key paths of a config file's text through nested mappings and list items, such
 * as `listen`, `probe.interval` and `backends.2.probe.tls.ca`, or none when it does not parse
 * to a mapping. A list item's path contains its index, so a reordered list gives other paths.
 * The walk stops after MAX_KEY_PATHS paths, so a file of nested YAML aliases stays cheap.
 */
export function settingKeyPaths(path: string, text: string): string[] {
  let data: unknown;
  try {
    data = parseConfigText(path, text);
  } catch {
    return [];
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    return [];
  }

  const paths: string[] = [];
  collectKeyPaths(data, "", paths);

  return paths;
}

/** The maximum number of key paths `settingKeyPaths` returns. */
const MAX_KEY_PATHS = 10_000;

/**
 * Adds the key paths under `value` to `paths`. A list item with a string `id`, such as a
 * backend, is named by its id (`backends[api-2].disabled`), so the path reads well in a log
 * line and stays the same when the list is reordered. Any other item is named by its index.
 */
function collectKeyPaths(value: unknown, prefix: string, paths: string[]): void {
  if (typeof value !== "object" || value === null) {
    return;
  }

  const entries: [string, unknown][] = Array.isArray(value) ? value.map((item, index) => [listItemKey(item, index), item]) : Object.entries(value).map(([key, child]) => [`.${key}`, child]);
  for (const [key, child] of entries) {
    if (paths.length >= MAX_KEY_PATHS) {
      return;
    }
    const keyPath = prefix === "" ? key.slice(1) : `${prefix}${key}`;
    paths.push(keyPath);
    collectKeyPaths(child, keyPath, paths);
  }
}

/** Returns the path step of a list item: `[ID]` for an item with a string `id`, else `.INDEX`. */
function listItemKey(item: unknown, index: number): string {
  const id = typeof item === "object" && item !== null && !Array.isArray(item) ? (item as { id?: unknown }).id : undefined;

  return typeof id === "string" ? `[${id}]` : `.${index}`;
}

/**
 * Reads a config file as UTF-8 text, for a start or `tinylb check`. For a path that is a
 * folder, such as a ConfigMap volume, the error names the config files in it to pass instead.
 * A reload reads with `readConfigBytes`, whose error has no such hint, since a running tinylb
 * keeps its --config path.
 *
 * @throws {ConfigError} when the file cannot be read, is not a regular file, is larger than
 *   MAX_CONFIG_BYTES or is not valid UTF-8. Its `cause` is the error of the read or the decode.
 */
export function readConfigText(path: string): string {
  let bytes: Buffer;
  try {
    bytes = readConfigBytes(path);
  } catch (error) {
    const hint = configFolderHint(path, Object.keys(PARSERS));
    if (hint === "" || !(error instanceof ConfigError)) {
      throw error;
    }
    throw new ConfigError(`${error.message}${hint}`, { cause: error.cause });
  }

  return decodeConfigText(path, bytes);
}

/**
 * Reads a config file's bytes.
 *
 * @throws {ConfigError} when the file cannot be read, is not a regular file or is larger than
 *   MAX_CONFIG_BYTES. Its `cause` is the error of the read, with its errno `code` where it has one.
 */
export function readConfigBytes(path: string): Buffer {
  try {
    return readRegularFile(path, MAX_CONFIG_BYTES);
  } catch (error) {
    throw new ConfigError(`read config ${path} failed: ${describeFileError(error)}`, { cause: error });
  }
}

/**
 * Decodes the bytes of config file `path` as UTF-8.
 *
 * @throws {ConfigError} when they are not valid UTF-8.
 */
export function decodeConfigText(path: string, bytes: Buffer): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (error) {
    throw new ConfigError(`read config ${path} failed: the file is not valid UTF-8`, { cause: error });
  }
}

/** Returns the syntax a config file's messages write their examples in, by its extension. */
function exampleSyntaxOf(path: string): ExampleSyntax {
  const extension = extname(path).toLowerCase();
  if (extension === ".toml") {
    return "toml";
  }

  return extension === ".json" || extension === ".jsonc" ? "json" : "yaml";
}

/** Parsers by file extension. A `.json` file is read as JSONC too, so it may hold comments and trailing commas. */
const PARSERS: Record<string, (text: string) => unknown> = {
  ".yaml": (text) => Bun.YAML.parse(text),
  ".yml": (text) => Bun.YAML.parse(text),
  ".json": (text) => Bun.JSONC.parse(text),
  ".jsonc": (text) => Bun.JSONC.parse(text),
  ".toml": (text) => Bun.TOML.parse(text),
};

function parseConfigText(path: string, text: string): unknown {
  const extension = extname(path).toLowerCase();
  const parse = PARSERS[extension];
  if (parse === undefined) {
    throw new ConfigError(`read config ${path} failed: unknown extension "${extension}"; use .yaml, .yml, .json, .jsonc or .toml`);
  }

  let data: unknown;
  try {
    data = parse(text);
  } catch (error) {
    const message = (error as Error).message;
    // Every prefix of the file ends early, so the bisection cannot place an end-of-file error.
    const line = /end of (file|input)/i.test(message) ? undefined : findErrorLine(parse, text, message);
    const where = line === undefined ? "at the end of the file" : `at line ${line}`;
    // Bun's messages start with "YAML Parse error: " and the like, which the file name already implies.
    const detail = message.replace(/^[A-Z]+ Parse error: /, "");
    const lines = text.split("\n");
    const lineText = line === undefined ? "" : (lines[line - 1] ?? "");
    const hint = extension === ".toml" ? tomlDurationHint(lineText) : yamlHint(extension, detail, lines, line ?? lines.length);
    throw new ConfigError(`parse config ${path} failed ${where}: ${detail}${quoteLine(lineText)}${hint}`, { cause: error });
  }

  // Bun returns the documents of a multi-document YAML file as a list, which would otherwise
  // be reported as "expected an object, got a list".
  const secondDocumentLine = extension === ".yaml" || extension === ".yml" ? findSecondYamlDocument(text) : undefined;
  if (Array.isArray(data) && secondDocumentLine !== undefined) {
    throw new ConfigError(`parse config ${path} failed: the file has ${data.length} YAML documents (the second starts at line ${secondDocumentLine}); put every setting in one document`);
  }
  const duplicate = findDuplicateKey(extension, text);
  if (duplicate !== undefined) {
    throw new ConfigError(`parse config ${path} failed at line ${duplicate.line}: duplicate key "${duplicate.key}", already set at line ${duplicate.firstLine}; remove one of them`);
  }

  return data;
}

/** Finds a key given twice in one mapping; the TOML parser rejects those itself. */
function findDuplicateKey(extension: string, text: string): DuplicateKey | undefined {
  if (extension === ".yaml" || extension === ".yml") {
    return findDuplicateYamlKey(text);
  }

  return extension === ".json" || extension === ".jsonc" ? findDuplicateJsonKey(text) : undefined;
}

/**
 * Returns the line of a `---` document marker that follows content, so it starts a second
 * document, or undefined. A marker is `---` at the start of a line; block scalar lines are
 * indented, so they cannot hold one.
 */
function findSecondYamlDocument(text: string): number | undefined {
  let seenContent = false;
  for (const [index, line] of text.split("\n").entries()) {
    if (/^---(\s|$)/.test(line)) {
      if (seenContent) {
        return index + 1;
      }
    } else if (!/^\s*(#.*)?\r?$/.test(line) && !line.startsWith("%")) {
      seenContent = true;
    }
  }

  return undefined;
}

/** Maximum characters of a line that a parse error quotes. */
const MAX_QUOTED_LINE = 80;

/**
 * Returns `` in `LINE` `` for a parse error's line, cut to MAX_QUOTED_LINE characters, or "" for
 * a blank one. Backticks keep the line's own quotes readable. A line with a backtick or a
 * control character is quoted as a JSON string instead.
 */
function quoteLine(line: string): string {
  const trimmed = line.trim();
  if (trimmed === "") {
    return "";
  }

  const quoted = trimmed.length > MAX_QUOTED_LINE ? `${trimmed.slice(0, MAX_QUOTED_LINE)}...` : trimmed;
  const plain = !/[`\u0000-\u001f\u007f]/.test(quoted);

  return plain ? ` in \`${quoted}\`` : ` in ${JSON.stringify(quoted)}`;
}

/** Lines before a YAML parse error searched for a double quote that is not closed. */
const QUOTE_SEARCH_LINES = 3;

/**
 * Returns a hint for a YAML parse error at 1-based line `line`, or "". Bun reports a quote
 * left open where the next line fails, so the hint names a line just before with an open
 * quote. Otherwise it describes what to look for after "Unexpected token", which names no token.
 */
function yamlHint(extension: string, detail: string, lines: string[], line: number): string {
  if (extension !== ".yaml" && extension !== ".yml") {
    return "";
  }
  const addressHint = yamlAddressHint(detail, lines[line - 1] ?? "");
  if (addressHint !== undefined) {
    return addressHint;
  }
  for (let number = line; number >= Math.max(1, line - QUOTE_SEARCH_LINES); number--) {
    const quote = openQuoteIn(lines[number - 1] ?? "");
    if (quote !== undefined) {
      return `; check the ${quote === '"' ? "double" : "single"} quote on line ${number}, which is not closed on that line`;
    }
  }

  return detail === "Unexpected token" ? "; check that line and the one before for indentation, a missing colon or comma, and an unclosed bracket or quote" : "";
}

/**
 * Returns the quote character that a YAML line opens and does not close, or undefined. A
 * double-quoted scalar escapes with a backslash, a single-quoted one by doubling the quote,
 * and a `#` after a space outside quotes starts a comment. The scan is an estimate: a quote
 * that opens a multi-line scalar on purpose counts as open too.
 */
function openQuoteIn(line: string): string | undefined {
  let open: string | undefined;
  for (let index = 0; index < line.length; index++) {
    const char = line[index]!;
    if (open === undefined) {
      if (char === "#" && (index === 0 || /\s/.test(line[index - 1]!))) {
        break;
      }
      // A quote opens a scalar only where one starts, so an apostrophe inside a plain word does not.
      if ((char === '"' || char === "'") && (index === 0 || /[\s[{,]/.test(line[index - 1]!))) {
        open = char;
      }
    } else if (open === '"' && char === "\\") {
      index++;
    } else if (char === open) {
      if (open === "'" && line[index + 1] === "'") {
        index++;
      } else {
        open = undefined;
      }
    }
  }

  return open;
}

/** A TOML line that sets a key to an unquoted duration, such as `connectTimeout = 3s`. */
const TOML_BARE_DURATION = /^\s*([A-Za-z0-9_.-]+)\s*=\s*(\d+(?:\.\d+)?(?:ms|s|m|h))\s*(?:#.*)?$/;

/** Returns a hint for a TOML line whose value is an unquoted duration, or "". */
function tomlDurationHint(line: string): string {
  const match = TOML_BARE_DURATION.exec(line);

  return match === null ? "" : `; quote durations in TOML, as in ${match[1]} = "${match[2]}"`;
}

/**
 * Finds the line of a parse error. Bun 1.4.4's YAML, TOML and JSONC errors carry no position
 * in the document, because their line and column are those of the calling JavaScript. So this
 * bisects on whole-line prefixes, and the error line is the first one whose prefix fails with
 * the same message. About log2(lines) parses of at most the file's size, so at most 1 MiB each.
 * NOTE: this assumes the parser stops at its first error, so that every prefix ending before
 * the error line parses or fails with another message; where that does not hold the line is a guess.
 */
function findErrorLine(parse: (text: string) => unknown, text: string, message: string): number {
  const lines = text.split("\n");
  const failsTheSame = (count: number): boolean => {
    try {
      // The newline keeps an error that a line's end reveals, such as an unterminated TOML string.
      parse(lines.slice(0, count).join("\n") + "\n");

      return false;
    } catch (error) {
      return (error as Error).message === message;
    }
  };

  let low = 1;
  let high = lines.length;
  while (low < high) {
    const middle = Math.floor((low + high) / 2);
    if (failsTheSame(middle)) {
      high = middle;
    } else {
      low = middle + 1;
    }
  }

  return low;
}

/** Describes one problem of the config `data` as its field path, then what is wrong with the value. */
function describeIssue(issue: z.core.$ZodIssue, data: unknown): string {
  const branch = issue.code === "invalid_union" ? mostSpecificBranchIssue(issue) : undefined;
  if (branch !== undefined) {
    return describeIssue({ ...branch, path: [...issue.path, ...branch.path] }, data);
  }

  const field = `${formatFieldPath(issue.path, "(top level)")}${backendIdOf(issue.path, data)}`;
  const input = "input" in issue ? issue.input : undefined;
  if (Array.isArray(input) && issue.code !== "too_small" && issue.code !== "too_big") {
    // A list where a single value is expected, such as `slowStart: [1s]`, which YAML reads as a list.
    const list = describeList(input);
    const message = issue.message.endsWith("got a list") ? `${issue.message}: ${list}` : `${issue.message} (got a list: ${list})`;

    return `${field}: ${shortened(message, MAX_MESSAGE_CHARS)}`;
  }
  // Objects are not shown: String() of a deeply nested array overflows the stack.
  if (input === undefined || typeof input === "object" || typeof input === "function") {
    return `${field}: ${issue.message}`;
  }

  const shown = shortened(JSON.stringify(input) ?? String(input));
  // A long value is cut where the message quotes it, so the reason after it stays readable.
  const message = issue.message.replaceAll(String(input), shortened(String(input)));
  const named = namesValue(issue.message, input as string | number | boolean | bigint);

  return `${field}: ${shortened(message, MAX_MESSAGE_CHARS)}${named ? "" : ` (got ${shown})`}`;
}

/**
 * Drops a `too_big` issue when another one of the same field has a lower maximum, such as zod's
 * own safe-integer bound beside a key's limit, so a value over both is reported once.
 */
function withoutLooserBounds(issues: readonly z.core.$ZodIssue[]): z.core.$ZodIssue[] {
  const lowest = new Map<string, number>();
  for (const issue of issues) {
    if (issue.code === "too_big") {
      const field = issue.path.join(".");
      lowest.set(field, Math.min(lowest.get(field) ?? Infinity, Number(issue.maximum)));
    }
  }

  return issues.filter((issue) => issue.code !== "too_big" || Number(issue.maximum) <= lowest.get(issue.path.join("."))!);
}

/**
 * Returns ` (backend "ID")` for a path inside a backend entry other than its id, such as
 * `backends[2].disabled`, so the message names the backend as well as its index. Returns
 * an empty string elsewhere, and for an entry without a valid string id.
 */
function backendIdOf(path: readonly PropertyKey[], data: unknown): string {
  if (path.length < 3 || path[0] !== "backends" || typeof path[1] !== "number" || path[2] === "id") {
    return "";
  }
  const backends = (data as { backends?: unknown } | null)?.backends;
  const id = Array.isArray(backends) ? (backends[path[1]] as { id?: unknown } | null)?.id : undefined;

  return typeof id === "string" && ID_IN_MESSAGE.test(id) ? ` (backend ${JSON.stringify(id)})` : "";
}

/** Ids that `backendIdOf` names: the valid id syntax, so a hostile id cannot flood the message. */
const ID_IN_MESSAGE = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

/** Maximum length of a value quoted in a config error, so a huge value cannot flood the log. */
const MAX_QUOTED_CHARS = 120;

/** Maximum length of a config error's message, with its quoted value already cut to MAX_QUOTED_CHARS. */
const MAX_MESSAGE_CHARS = 400;

function shortened(text: string, maxChars = MAX_QUOTED_CHARS): string {
  return text.length <= maxChars ? text : `${text.slice(0, maxChars)}... (${text.length} characters)`;
}

/**
 * Returns the issue of the union branch that matched the value's type, such as the address
 * check of a string `listen`, so the message says what is wrong instead of "Invalid input".
 * When no branch matched and the value is a string, such as `expectStatus: "200"`, it returns
 * the first branch's issue, whose message quotes the string.
 */
function mostSpecificBranchIssue(issue: z.core.$ZodIssueInvalidUnion): z.core.$ZodIssue | undefined {
  for (const branch of issue.errors) {
    const specific = branch.find((candidate) => candidate.code !== "invalid_type");
    if (specific !== undefined) {
      return specific;
    }
  }
  const first = issue.errors[0]?.[0];

  return first !== undefined && "input" in first && (typeof first.input === "string" || isDateTime(first.input)) ? first : undefined;
}

function checkUniqueIds(path: string, backends: Backend[]): void {
  const seen = new Map<string, number>();
  backends.forEach((backend, index) => {
    const first = seen.get(backend.id);
    if (first !== undefined) {
      throw new ConfigError(`invalid config ${path}: backends[${index}].id: duplicate id "${backend.id}", already used by backends[${first}]; ids must be unique`);
    }
    seen.set(backend.id, index);
  });
}
