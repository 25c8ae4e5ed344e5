/**
 * The structured logger: a level, a message and a few fixed fields.
 *
 * Level policy: error = a client could not be served for a reason on our side;
 * warn = a failure tinylb recovered from (dial error, empty set, bad reload);
 * info = start, stop, backend set changes, health flips; debug = each connection.
 * Text lines go to stderr by default; `json` writes one JSON object per line.
 */

/** Log levels, least to most severe. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Log output formats. */
export const LOG_FORMATS = ["text", "json"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Fields a log line may carry besides the message. */
export interface LogFields {
  component?: string;
  conn?: number;
  client?: string;
  backend?: string;
  target?: string;
  err?: unknown;
  [field: string]: unknown;
}

/** Where lines go; a test can collect them instead of printing. */
export type LogSink = (line: string) => void;

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** A logger with a minimum level, a format and fields bound to every line. */
export class Logger {
  level: LogLevel;
  format: LogFormat;
  readonly #sink: LogSink;
  readonly #bound: LogFields;

  constructor(options: { level?: LogLevel; format?: LogFormat; sink?: LogSink; fields?: LogFields } = {}) {
    this.level = options.level ?? "info";
    this.format = options.format ?? "text";
    this.#sink = options.sink ?? ((line) => process.stderr.write(line + "\n"));
    this.#bound = options.fields ?? {};
  }

  /** Returns a logger that adds `fields` to every line and shares this one's level and format. */
  with(fields: LogFields): Logger {
    const child = new Logger({ level: this.level, format: this.format, sink: this.#sink, fields: { ...this.#bound, ...fields } });
    // Level and format follow the parent when it is reconfigured after a reload.
    Object.defineProperty(child, "level", { get: () => this.level, set: (value: LogLevel) => (this.level = value) });
    Object.defineProperty(child, "format", { get: () => this.format, set: (value: LogFormat) => (this.format = value) });

    return child;
  }

  /** Returns true when a line at `level` would be written. */
  enabled(level: LogLevel): boolean {
    return RANK[level] >= RANK[this.level];
  }

  debug(msg: string, fields?: LogFields): void {
    this.log("debug", msg, fields);
  }

  info(msg: string, fields?: LogFields): void {
    this.log("info", msg, fields);
  }

  warn(msg: string, fields?: LogFields): void {
    this.log("warn", msg, fields);
  }

  error(msg: string, fields?: LogFields): void {
    this.log("error", msg, fields);
  }

  /** Writes one line when `level` is enabled. */
  log(level: LogLevel, msg: string, fields?: LogFields): void {
    if (!this.enabled(level)) {
      return;
    }

    const all = { ...this.#bound, ...fields };
    this.#sink(this.format === "json" ? formatJson(level, msg, all) : formatText(level, msg, all));
  }
}

function formatJson(level: LogLevel, msg: string, fields: LogFields): string {
  const record: Record<string, unknown> = { time: new Date().toISOString(), level, msg };
  for (const [key, value] of Object.entries(fields)) {
    if (value !== undefined) {
      record[key] = key === "err" ? errorText(value) : value;
    }
  }

  return JSON.stringify(record);
}

/** Control characters, and the Unicode line and paragraph separators, which would break or garble a line. */
const CONTROL_CHARACTERS = /[\p{Cc}\u2028\u2029]/gu;

/** Characters that end or break a bare logfmt value: any space or control character, `"` and `=`. */
const NEEDS_QUOTES = /[\s\p{Cc}"=]/u;

/** The characters of CONTROL_CHARACTERS that JSON.stringify leaves as they are. */
const UNESCAPED_BY_JSON = /[\u007f-\u009f\u2028\u2029]/g;

/**
 * Formats a text line: time, level and message, then the fields as logfmt `key=value` pairs
 * that parsers such as Loki's `logfmt` and go-logfmt split as written.
 */
function formatText(level: LogLevel, msg: string, fields: LogFields): string {
  let line = `${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${escapeControlCharacters(msg)}`;
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) {
      continue;
    }
    const text = key === "err" ? errorText(value) : String(value);
    line += ` ${key}=${logfmtValue(text)}`;
  }

  return line;
}

/**
 * Returns a logfmt value: bare when it has no character that ends or breaks one, else in
 * double quotes with JSON escapes. go-logfmt, and Loki's parser adapted from it, unquote such
 * a value with the string unquoting of Go's encoding/json.
 */
function logfmtValue(text: string): string {
  if (text !== "" && !NEEDS_QUOTES.test(text)) {
    return text;
  }

  return JSON.stringify(text).replace(UNESCAPED_BY_JSON, escapeCharacter);
}

/**
 * Returns `text` with each control character, and each Unicode line or paragraph separator,
 * written as its escape, so that a value quoted in a message cannot end the line or drive the
 * terminal.
 */
export function escapeControlCharacters(text: string): string {
  return text.replace(CONTROL_CHARACTERS, escapeCharacter);
}

/** Returns the escape of one character: JSON's short form where it has one, such as `\n`, else `\uXXXX`. */
function escapeCharacter(character: string): string {
  const escaped = JSON.stringify(character).slice(1, -1);

  return escaped !== character ? escaped : `\\u${character.charCodeAt(0).toString(16).padStart(4, "0")}`;
}

/** Formats an error value as one line: its message, then the messages of its causes. */
export function errorText(error: unknown): string {
  if (!(error instanceof Error)) {
    return String(error);
  }

  let text = error.message;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && !text.includes(code)) {
    text += ` (${code})`;
  }
  if (error.cause !== undefined && error.cause !== error) {
    const cause = errorText(error.cause);
    if (!text.includes(cause)) {
      text += `: ${cause}`;
    }
  }

  return text;
}

/** A logger that writes nothing, for tests and library users who bring no logger. */
export const silentLogger = new Logger({ level: "error", sink: () => {} });
