/**
 * Config values that a parser read as Infinity or NaN, such as `1e400`, which does not fit
 * in a double, or YAML's `.inf`. The schema would reject them as the wrong type without
 * saying what the key accepts, so they are described here with the key's range. Numbers
 * past 2^53, such as `9007199254740993` or YAML's `0x20000000000001`, are described here too,
 * because the parser may round them and the schema's message would quote them in
 * JavaScript's decimal digits.
 */
import type { z } from "zod";
import { DURATION_KEY } from "./zod-messages.ts";

/**
 * A number literal as YAML, JSON and TOML write one, including YAML's `.inf` and `.nan`, TOML's
 * `inf` and `nan`, and the hexadecimal, octal and binary whole numbers `0x1f`, `0o17` and `0b1`.
 */
const NUMBER_LITERAL = /[-+]?(?:\.inf|\.Inf|\.INF|\.nan|\.NaN|\.NAN|inf|nan|0x[\da-fA-F_]+|0o[0-7_]+|0b[01_]+|(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][-+]?\d+)?)/g;

/** Maximum characters of a literal quoted in a message, so a number of a million digits cannot flood the log. */
const MAX_LITERAL_CHARS = 40;

/**
 * Describes each value of the parsed config `data` that is Infinity, -Infinity or NaN at the
 * path of a key that takes a number or a duration. Each problem names the key, the value as
 * written in `text` and the range that the key accepts, such as `maxConnections: 1e400 does
 * not fit in a number (read as Infinity); use a whole number from 0 to 10000000`. Other keys
 * get no problem here, because their schema error already names the type they take.
 *
 * @param fieldName names the field at a path, such as `backends[0].probe.fall (backend "a")`.
 */
export function nonFiniteNumberProblems(data: unknown, schema: z.ZodType, text: string | undefined, fieldName: (path: readonly PropertyKey[]) => string): string[] {
  const problems: string[] = [];
  for (const { path, value } of nonFiniteValues(data, [])) {
    const accepted = acceptedRange(schema, path);
    if (accepted !== undefined) {
      const written = writtenLiteral(text, path, value);
      problems.push(`${fieldName(path)}: ${written} ${describeReading(value, written)}; use ${accepted}`);
    }
  }

  return problems;
}

/**
 * Describes what the parser made of `value`, written as `written`. A number past 2^53 that
 * was read exactly is only too large, since JavaScript would print it in other digits, such
 * as 18446744073709552000 for 2^64.
 */
function describeReading(value: number, written: string): string {
  if (Number.isNaN(value)) {
    return "is not a number (read as NaN)";
  }
  if (!Number.isFinite(value)) {
    return `does not fit in a number (read as ${value})`;
  }
  if (wasRounded(written, value)) {
    return `is outside ±9007199254740991, the range of exact whole numbers (read as ${value})`;
  }

  return value > 0 ? "is too large" : "is too small";
}

/** Lists the non-finite numbers and those past 2^53 in `value` with their paths, depth first in key order. */
function nonFiniteValues(value: unknown, path: PropertyKey[]): { path: PropertyKey[]; value: number }[] {
  if (typeof value === "number") {
    return Number.isFinite(value) && Math.abs(value) <= Number.MAX_SAFE_INTEGER ? [] : [{ path, value }];
  }
  if (Array.isArray(value)) {
    return value.flatMap((item, index) => nonFiniteValues(item, [...path, index]));
  }
  if (typeof value === "object" && value !== null) {
    return Object.entries(value).flatMap(([key, child]) => nonFiniteValues(child, [...path, key]));
  }

  return [];
}

/**
 * Returns what the key at `path` accepts, such as `a whole number from 0 to 10000000`, or
 * undefined for a key that takes neither a number nor a duration.
 */
function acceptedRange(schema: z.ZodType, path: readonly PropertyKey[]): string | undefined {
  const key = [...path].reverse().find((part) => typeof part === "string");
  // Durations take a unit, so a range of numbers does not apply; slowStart also takes "off".
  if (typeof key === "string" && (DURATION_KEY.test(key) || /slowStart$/i.test(key))) {
    return "a duration with a unit (ms, s, m or h) of at most 24h, such as 30s";
  }
  const number = numberSchemaAt(schema, path);
  if (number === undefined) {
    return undefined;
  }

  const kind = number.isInt ? "a whole number" : "a number";
  const min = Number.isFinite(number.minValue) && number.minValue !== Number.MIN_SAFE_INTEGER ? number.minValue : undefined;
  const max = Number.isFinite(number.maxValue) && number.maxValue !== Number.MAX_SAFE_INTEGER ? number.maxValue : undefined;
  if (min !== undefined && max !== undefined) {
    return `${kind} from ${min} to ${max}`;
  }
  if (min !== undefined) {
    return `${kind} of at least ${min}`;
  }

  return max === undefined ? kind : `${kind} of at most ${max}`;
}

/** The fields of zod's number schema that `acceptedRange` reads. */
interface NumberSchema {
  isInt: boolean;
  minValue: number;
  maxValue: number;
}

/**
 * Finds the number schema that validates the value at `path` of `schema`, through optional
 * values, transforms, objects, lists and the branches of a union. Returns undefined where the
 * value at `path` is not a number.
 */
function numberSchemaAt(schema: z.ZodType, path: readonly PropertyKey[]): NumberSchema | undefined {
  const def = schema._zod.def as unknown as Record<string, unknown> & { type: string };
  switch (def.type) {
    case "optional":
    case "nullable":
    case "default":
      return numberSchemaAt(def.innerType as z.ZodType, path);
    case "pipe":
      return numberSchemaAt(def.in as z.ZodType, path);
    case "union":
      for (const option of def.options as z.ZodType[]) {
        const found = numberSchemaAt(option, path);
        if (found !== undefined) {
          return found;
        }
      }

      return undefined;
    case "object": {
      const [key, ...rest] = path;
      const child = typeof key === "string" ? (def.shape as Record<string, z.ZodType>)[key] : undefined;

      return child === undefined ? undefined : numberSchemaAt(child, rest);
    }
    case "array": {
      const [index, ...rest] = path;

      return typeof index === "number" ? numberSchemaAt(def.element as z.ZodType, rest) : undefined;
    }
    case "number":
      return path.length === 0 ? (schema as unknown as NumberSchema) : undefined;
    default:
      return undefined;
  }
}

/**
 * Returns the literal of a `value` as written in the config text, such as `1e400`,
 * found on a line that names the last key of `path`. Returns "the value" when the text is not
 * at hand or no such literal is found.
 * NOTE: the first such line wins, so two entries with the same key and differently written
 * overflowing values (`1e400` and `2e400`) both quote the first literal.
 */
function writtenLiteral(text: string | undefined, path: readonly PropertyKey[], value: number): string {
  const fallback = "the value";
  const key = [...path].reverse().find((part) => typeof part === "string");
  if (text === undefined || typeof key !== "string") {
    return fallback;
  }

  for (const line of text.split("\n")) {
    if (!line.includes(key)) {
      continue;
    }
    for (const literal of line.slice(line.indexOf(key) + key.length).match(NUMBER_LITERAL) ?? []) {
      if (Object.is(parseLiteral(literal), value)) {
        return literal.length > MAX_LITERAL_CHARS ? `${literal.slice(0, MAX_LITERAL_CHARS)}... (${literal.length} characters)` : literal;
      }
    }
  }

  return fallback;
}

/** True when `written`, a whole number literal, differs from `value`, the double it was read as. */
function wasRounded(written: string, value: number): boolean {
  const exact = exactWholeNumber(written);

  return exact !== undefined && exact !== BigInt(value);
}

/**
 * Reads a whole number literal in decimal, hexadecimal (`0x`), octal (`0o`) or binary (`0b`)
 * digits without rounding. Returns undefined for any other literal, such as `1e400`.
 */
function exactWholeNumber(written: string): bigint | undefined {
  const unsigned = written.replace(/^[-+]/, "").replaceAll("_", "");
  if (!/^(?:\d+|0x[\da-f]+|0o[0-7]+|0b[01]+)$/i.test(unsigned)) {
    return undefined;
  }
  // BigInt reads the 0x, 0o and 0b prefixes, but not a sign in front of them.
  const magnitude = BigInt(unsigned);

  return written.startsWith("-") ? -magnitude : magnitude;
}

/** Reads a number literal of YAML, JSON or TOML as the parsers do, for comparison only. */
function parseLiteral(literal: string): number {
  const sign = literal.startsWith("-") ? -1 : 1;
  const unsigned = literal.replace(/^[-+]/, "").toLowerCase();
  if (unsigned === ".inf" || unsigned === "inf") {
    return sign * Infinity;
  }
  if (unsigned === ".nan" || unsigned === "nan") {
    return NaN;
  }

  return sign * Number(unsigned.replaceAll("_", ""));
}
