import { expect, test } from "bun:test";
import { Logger } from "../src/logger.ts";

/**
 * Splits a text line's `key=value` pairs by the rules of go-logfmt's decoder, from which
 * Loki's `logfmt` stage is adapted. A bare value ends at the first byte up to a space, and a
 * `"` or `=` in it is a syntax error. A quoted value is unquoted like a JSON string. Words
 * without `=` (the time, level and message) come back as keys with an empty value.
 */
function parseLogfmt(line: string): Map<string, string> {
  const pairs = new Map<string, string>();
  let position = 0;
  const atSeparator = (): boolean => position >= line.length || line.charCodeAt(position) <= 0x20;
  while (position < line.length) {
    while (position < line.length && atSeparator()) {
      position++;
    }
    const keyStart = position;
    while (!atSeparator() && line[position] !== "=") {
      if (line[position] === '"') {
        throw new Error(`unexpected '"' in a key at ${position}: ${line}`);
      }
      position++;
    }
    const key = line.slice(keyStart, position);
    if (line[position] !== "=") {
      if (key !== "") {
        pairs.set(key, "");
      }
      continue;
    }

    position++;
    if (line[position] === '"') {
      const valueStart = position;
      position++;
      while (position < line.length && line[position] !== '"') {
        position += line[position] === "\\" ? 2 : 1;
      }
      if (position >= line.length) {
        throw new Error(`unterminated quoted value at ${valueStart}: ${line}`);
      }
      position++;
      pairs.set(key, JSON.parse(line.slice(valueStart, position)) as string);
      continue;
    }
    const valueStart = position;
    while (!atSeparator()) {
      if (line[position] === '"' || line[position] === "=") {
        throw new Error(`unexpected '${line[position]}' in a bare value at ${position}: ${line}`);
      }
      position++;
    }
    pairs.set(key, line.slice(valueStart, position));
  }

  return pairs;
}

function textLine(msg: string, fields: Record<string, unknown>): string {
  const lines: string[] = [];
  new Logger({ format: "text", sink: (line) => lines.push(line) }).info(msg, fields);
  expect(lines.length).toBe(1);

  return lines[0]!;
}

test.each([
  ["plain", "connection refused (ECONNREFUSED)"],
  ["error text with quotes", 'dial backend "a" (127.0.0.1:1) failed: connect timed out after 3000 ms'],
  ["file path with spaces", "/etc/tinylb/my config.yaml"],
  ["equals sign", "a=b"],
  ["only an equals sign", "="],
  ["empty", ""],
  ["lone double quote", '"'],
  ["backslashes", "C:\\dir\\"],
  ["backslash before a quote", '\\"'],
  ["line feed and tab", "first line\nsecond\tline"],
  ["carriage return", "a\rb"],
  ["terminal escape", "\u001b[31mred\u001b[0m"],
  ["NUL and DEL", "a\u0000b\u007fc"],
  ["C1 control", "a\u0085b"],
  ["line separator", "a\u2028b"],
  ["no-break space", "a\u00a0b"],
  ["non-ASCII", "überprüft ✓"],
  ["key-like text", "x=1 y=2"],
])("text format keeps a value with %s", (_case, value) => {
  const line = textLine("value check", { file: value, err: new Error(value), after: "end" });

  const pairs = parseLogfmt(line);

  expect(pairs.get("file")).toBe(value);
  expect(pairs.get("err")).toBe(value);
  expect(pairs.get("after")).toBe("end");
  expect(line).not.toMatch(/[\p{Cc}\u2028\u2029]/u);
});

test("text format leaves a plain value bare", () => {
  const line = textLine("value check", { backend: "api-1", target: "10.0.0.1:6443", conn: 7 });

  expect(line).toEndWith(" value check backend=api-1 target=10.0.0.1:6443 conn=7");
});

test("text format escapes control characters in the message", () => {
  const line = textLine("first\nsecond \u001b[31m", { backend: "a" });

  expect(line).toContain(" first\\nsecond \\u001b[31m backend=a");
  expect(line).not.toMatch(/[\p{Cc}]/u);
  expect(parseLogfmt(line).get("backend")).toBe("a");
});
