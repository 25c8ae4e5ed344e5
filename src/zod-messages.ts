/**
 * Plain-English messages for zod issues, shared by the config file and the admin API.
 *
 * Pass `plainIssueMessage` (or `plainJsonIssueMessage` for a request body) as the `error`
 * option of `safeParse`. Messages a schema sets itself (refinements, custom issues) win over
 * these; issues this map does not cover keep zod's text.
 */
import type { z } from "zod";
import { closestName } from "./suggestions.ts";
import { yamlScalar } from "./yaml-scalar.ts";

/** Keys whose values are durations, so a bare number gets the "add a unit" hint. */
export const DURATION_KEY = /(interval|timeout|grace|keepalive|backoff)$/i;

/** Syntax of the text a message's examples are written in: a config file's, or JSON for the admin API. */
export type ExampleSyntax = "yaml" | "toml" | "json";

/** Returns the message for a zod issue, or undefined to keep zod's own. Examples are in YAML flow style. */
export function plainIssueMessage(issue: z.core.$ZodRawIssue): string | undefined {
  return issueMessageIn("yaml", issue);
}

/** Returns the message for a zod issue of a JSON body, with examples in JSON. */
export function plainJsonIssueMessage(issue: z.core.$ZodRawIssue): string | undefined {
  return issueMessageIn("json", issue);
}

/** Returns the message {@link plainIssueMessage} gives, with examples written in `syntax`. */
export function issueMessageIn(syntax: ExampleSyntax, issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case "invalid_type":
      return describeInvalidType(syntax, issue.expected, issue.input, issue.path);
    case "too_small":
      return describeBound("at least", issue.origin, issue.minimum, issue.inclusive !== false);
    case "too_big":
      return describeBound("at most", issue.origin, issue.maximum, issue.inclusive !== false);
    case "invalid_value":
      return issue.values.length === 1 ? `must be ${JSON.stringify(issue.values[0])}` : `must be one of ${issue.values.map((value) => JSON.stringify(value)).join(", ")}`;
    case "unrecognized_keys":
      return describeUnknownKeys(issue.keys, issue.inst);
  }

  return undefined;
}

function describeInvalidType(syntax: ExampleSyntax, expected: string, input: unknown, path: PropertyKey[] | undefined): string {
  if (input === undefined) {
    return "missing";
  }
  const key = path?.at(-1);
  if (expected === "string" && typeof input === "number" && typeof key === "string" && DURATION_KEY.test(key)) {
    return `invalid duration ${input}: add a unit (ms, s, m or h), such as ${input}s`;
  }
  if (expected === "object" && typeof input === "string" && path?.length === 2 && path[0] === "backends" && typeof path[1] === "number") {
    return `expected an object such as ${backendExample(syntax, input)}`;
  }
  if (expected === "array" && path?.length === 1 && path[0] === "backends" && isPlainObject(input)) {
    return `expected a list of backends such as [${backendListExample(syntax, input)}]`;
  }
  if (typeof input === "string" && (expected === "boolean" || expected === "number" || expected === "int")) {
    return describeQuotedValue(expected, input);
  }

  // A string key given an unquoted date, which the parser read as a date and time.
  const quote = expected === "string" && isDateTime(input) ? "; quote the value" : "";

  return `expected ${TYPE_NAMES[expected] ?? expected}, got ${typeNameOf(input)}${quote}`;
}

/**
 * Describes a string where a boolean or a number is expected, and quotes it, because the type
 * name alone hides the value. "expected true or false, got a string" reads wrong when the
 * string is "true". A string that spells a valid value gets the fix, which is to drop the quotes.
 */
function describeQuotedValue(expected: "boolean" | "number" | "int", input: string): string {
  const spellsValue = expected === "boolean" ? /^(true|false)$/.test(input) : /^[+-]?\d+(\.\d+)?$/.test(input.trim());
  const typeName = TYPE_NAMES[expected]!;

  return spellsValue ? `expected ${typeName} without quotes, got the string ${JSON.stringify(input)}` : `expected ${typeName}, got the string ${JSON.stringify(input)}`;
}

/**
 * Returns a backend entry in `syntax`, built from an `ID=TARGET` string as the `--backend`
 * flag takes it, or an example for any other string.
 */
function backendExample(syntax: ExampleSyntax, text: string): string {
  const match = /^([^=\s]+)=(\S+)$/.exec(text);
  const [id, target] = match === null ? ["api-1", "10.0.0.1:6443"] : [match[1]!, match[2]!];
  switch (syntax) {
    case "yaml":
      return `{ id: ${yamlScalar(id)}, target: ${yamlScalar(target)} }`;
    case "toml":
      return `{ id = ${JSON.stringify(id)}, target = ${JSON.stringify(target)} }`;
    case "json":
      return `{"id": ${JSON.stringify(id)}, "target": ${JSON.stringify(target)}}`;
  }
}

/**
 * Returns up to two list entries built from a `backends` mapping, whose values are targets
 * (`ID: TARGET`) or entries without their id (`ID: { target: TARGET }`), or the entry built
 * from a mapping that is one entry itself, or an example entry.
 */
function backendListExample(syntax: ExampleSyntax, mapping: Record<string, unknown>): string {
  // One entry written without its list, such as `backends: { id: a, target: 10.0.0.1:6443 }`.
  if (typeof mapping.target === "string") {
    return backendExample(syntax, `${typeof mapping.id === "string" ? mapping.id : "api-1"}=${mapping.target}`);
  }
  const entries = Object.entries(mapping)
    .slice(0, 2)
    .map(([id, value]) => [id, isPlainObject(value) ? value.target : value] as const);
  if (entries.length === 0 || entries.some(([, target]) => typeof target !== "string")) {
    return backendExample(syntax, "");
  }

  return entries.map(([id, target]) => backendExample(syntax, `${id}=${target as string}`)).join(", ");
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const TYPE_NAMES: Record<string, string> = {
  string: "a string",
  number: "a number",
  int: "a whole number",
  boolean: "true or false",
  object: "an object",
  array: "a list",
};

/**
 * True for a date and time that a parser made of an unquoted value: Bun 1.4.4's TOML parser
 * returns a `Temporal` object for `1979-05-27T07:32:00Z` (its YAML parser returns a string).
 * JavaScript's own `Date` counts too.
 */
export function isDateTime(input: unknown): boolean {
  return input instanceof Date || Object.prototype.toString.call(input).startsWith("[object Temporal.");
}

function typeNameOf(input: unknown): string {
  if (input === null) {
    return "null";
  }
  if (Array.isArray(input)) {
    return "a list";
  }
  if (typeof input === "number" && !Number.isFinite(input)) {
    // Such as 1e400, which JSON.parse and Bun 1.4.4's YAML and TOML parsers read as Infinity.
    return `a number too large to represent (read as ${input})`;
  }
  if (typeof input === "number" && !Number.isInteger(input)) {
    return `the number ${input}`;
  }
  if (isDateTime(input)) {
    const text = input instanceof Date && !Number.isNaN(input.getTime()) ? input.toISOString() : String(input);

    // A TOML date without a time, such as 1979-05-27, is a Temporal.PlainDate.
    return text.includes("T") ? `the date and time ${text}` : `the date ${text}`;
  }

  return typeof input === "object" ? "an object" : `a ${typeof input}`;
}

function describeBound(relation: "at least" | "at most", origin: string, bound: number | bigint, inclusive: boolean): string {
  if (origin === "string") {
    return relation === "at least" && bound === 1 ? "must not be empty" : `must have ${relation} ${bound} characters`;
  }
  if (origin === "array" || origin === "set") {
    return `must have ${relation} ${bound} ${bound === 1 ? "entry" : "entries"}`;
  }
  if (!inclusive) {
    return `must be ${relation === "at least" ? "more" : "less"} than ${bound}`;
  }

  return `must be ${relation} ${bound}`;
}

/** HAProxy keywords that people moving from HAProxy may write as config keys, and tinylb's key for each. */
const HAPROXY_KEYS = new Map([
  ["bind", "listen"],
  ["server", "backends"],
  ["servers", "backends"],
  ["maxconn", "maxConnections"],
  ["nbthread", "workers"],
  ["retries", "maxAttempts"],
]);

function describeUnknownKeys(keys: string[], schema: unknown): string {
  const shape = (schema as { _zod?: { def?: { shape?: Record<string, unknown> } } } | undefined)?._zod?.def?.shape;
  const valid = shape === undefined ? [] : Object.keys(shape);
  // At most 5 keys of at most 60 characters each are quoted, so a hostile input cannot flood the log.
  const described = keys.slice(0, 5).map((key) => {
    const shown = JSON.stringify(key.length > 60 ? `${key.slice(0, 60)}...` : key);
    const haproxyKey = HAPROXY_KEYS.get(key.toLowerCase());
    const suggestion = closestName(key, valid) ?? (haproxyKey !== undefined && valid.includes(haproxyKey) ? haproxyKey : undefined);

    return suggestion === undefined ? shown : `${shown} (did you mean "${suggestion}"?)`;
  });
  if (keys.length > 5) {
    described.push(`and ${keys.length - 5} more`);
  }
  const list = valid.length === 0 ? "" : `; valid keys: ${valid.join(", ")}`;

  return `unknown key${keys.length === 1 ? "" : "s"} ${described.join(", ")}${list}`;
}

/**
 * Formats a zod issue path as a field path, such as `backends[1].target`.
 *
 * @param topLevel what to print for the empty path, the whole input.
 */
export function formatFieldPath(path: readonly PropertyKey[], topLevel: string): string {
  if (path.length === 0) {
    return topLevel;
  }

  let field = "";
  for (const part of path) {
    if (typeof part === "number") {
      field += `[${part}]`;
    } else {
      field += field === "" ? String(part) : `.${String(part)}`;
    }
  }

  return field;
}
