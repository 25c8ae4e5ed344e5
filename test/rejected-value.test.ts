import { expect, test } from "bun:test";
import { describeList, namesValue, withRejectedValue } from "../src/rejected-value.ts";

test.each([
  ['must be one of "off", "v1", "v2"', 2, false],
  ['must be one of "off", "v1", "v2"', "2", false],
  ["must be at least 100", 1, false],
  ["must be at least 0", -1, false],
  ["expected a whole number, got the number 1.5", 1, false],
  ['invalid duration "100h": the maximum is 24h', "100h", true],
  ["invalid duration 10: add a unit (ms, s, m or h), such as 500ms or 3s", 10, true],
  ["expected a whole number, got the number 1.5", 1.5, true],
  ["the keepalive time 40000s is longer than Linux allows", "40000s", true],
  ["the keepalive time 1500ms is not a whole number of seconds", "1.5s", false],
  ['invalid backend id "": use 1 to 128 ASCII letters', "", true],
  ["must not be empty", "", false],
])("namesValue(%p, %p) is %p", (message, value, expected) => {
  expect(namesValue(message, value)).toBe(expected);
});

test("withRejectedValue appends a value the message lacks", () => {
  expect(withRejectedValue("the interval must be at least 1s", "500ms")).toBe('the interval must be at least 1s (got "500ms")');
});

test("withRejectedValue keeps a message that names the value", () => {
  expect(withRejectedValue('invalid duration "2d": use a number and a unit', "2d")).toBe('invalid duration "2d": use a number and a unit');
});

test.each([
  [[], "[]"],
  [["1s"], '["1s"]'],
  [["a", 1, true, null, { id: "x" }], '["a", 1, true, null, {...}]'],
  [[1, 2, 3, 4, 5, 6, 7], "[1, 2, 3, 4, 5, and 2 more]"],
  [[[[["deep"]]]], "[[[[...]]]]"],
  [["x".repeat(100)], `["${"x".repeat(59)}... (102 characters)]`],
])("describeList of %p", (list, expected) => {
  expect(describeList(list)).toBe(expected);
});

test("describeList of a list nested 100,000 deep", () => {
  let list: unknown[] = [];
  for (let level = 0; level < 100_000; level++) {
    list = [list];
  }

  expect(describeList(list)).toBe("[[[[...]]]]");
});
