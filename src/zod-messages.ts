/**
 * Plain-English messages for zod issues, shared by the config file and the admin API.
 *
 * Pass `plainIssueMessage` (or `plainJsonIssueMessage` for a request body) as the `error`
 * option of `safeParse`. Messages a schema sets itself (refinements, custom issues) win over
 * these; issues this map does not cover keep zod's text.
 */
import type { z } from "zod";
import { backendExample, backendListExample } from "./backend-examples.ts";
import { closestName } from "./suggestions.ts";

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
      return describeInvalidType(syntax, issue.expected, issue.input, issue.path, issue.inst);
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

function describeInvalidType(syntax: ExampleSyntax, expected: string, input: unknown, path: PropertyKey[] | undefined, schema: unknown): string {
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
  const list = expected === "array" && path?.length === 1 && path[0] === "backends" ? backendListExample(syntax, input, schema) : undefined;
  if (list !== undefined) {
    return `expected a list of backends such as [${list}]`;
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
