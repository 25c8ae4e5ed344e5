import { expect, test } from "bun:test";
import { DescriptorShortage } from "../src/descriptor-shortage.ts";
import { LogLines } from "./support/log-lines.ts";

const SHORTAGE_LINE = "too many open files (EMFILE): a connect failed for lack of a file descriptor, not because of the backend, so its health is unchanged; raise ulimit -n (LimitNOFILE= under systemd)";
const FIELDS = { backend: "b1", target: "127.0.0.1:1" };

/** Builds a connect error with errno `code`, as Bun 1.4.4 reports a failed connect. */
function connectError(code: string): Error {
  return Object.assign(new Error("Failed to connect"), { code });
}

/** A shortage check under a limit of 100 (reserve 8) whose exact count returns `open()` and is counted in `counts`. */
function shortageOf(open: () => number | undefined, now: () => number = () => 0) {
  const log = new LogLines();
  const counts = { value: 0 };
  const shortage = new DescriptorShortage(log.logger, 100, () => (counts.value++, open()), now);

  return { shortage, log, counts };
}

test.each([
  // Fewer than twice the reserve of 8 free: a shortage.
  ["ECONNREFUSED", 99, true],
  ["ECONNREFUSED", 85, true],
  ["EMFILE", 90, true],
  ["ConnectionRefused", 100, true],
  // At least 16 free: the backend refused.
  ["ECONNREFUSED", 84, false],
  ["ECONNREFUSED", 20, false],
  // Other errors never come from a shortage.
  ["ETIMEDOUT", 100, false],
  ["ECONNRESET", 100, false],
] as const)("DescriptorShortage of %s with %d open is %p", (code, open, expected) => {
  const { shortage, log } = shortageOf(() => open);

  expect(shortage.explains(connectError(code), FIELDS)).toBe(expected);
  expect(log.withMessage(SHORTAGE_LINE)).toHaveLength(expected ? 1 : 0);
});

test("DescriptorShortage reads the code of a wrapped connect error", () => {
  const { shortage } = shortageOf(() => 99);

  expect(shortage.explains(new Error("connection refused (ECONNREFUSED)", { cause: connectError("ECONNREFUSED") }), FIELDS)).toBe(true);
  expect(shortage.explains(new Error("timed out", { cause: connectError("ETIMEDOUT") }), FIELDS)).toBe(false);
});

test("DescriptorShortage takes a failed count as a shortage", () => {
  const { shortage, log } = shortageOf(() => undefined);

  expect(shortage.explains(connectError("ECONNREFUSED"), FIELDS)).toBe(true);
  expect(log.withMessage(SHORTAGE_LINE)).toEqual([expect.objectContaining({ level: "warn", backend: "b1", target: "127.0.0.1:1", descriptorLimit: 100, open: 100 })]);
});

test("DescriptorShortage skips the count when a fresh one left plenty free", () => {
  let now = 0;
  let open = 20;
  const { shortage, counts } = shortageOf(() => open, () => now);

  expect(shortage.explains(connectError("ECONNREFUSED"), FIELDS)).toBe(false);
  expect(counts.value).toBe(1);
  expect(shortage.explains(connectError("ECONNREFUSED"), FIELDS)).toBe(false);
  expect(counts.value).toBe(1);

  // After 100 ms the count is taken again.
  now = 100;
  open = 99;
  expect(shortage.explains(connectError("ECONNREFUSED"), FIELDS)).toBe(true);
  expect(counts.value).toBe(2);
  // Near the limit every failure is counted exactly.
  expect(shortage.explains(connectError("ECONNREFUSED"), FIELDS)).toBe(true);
  expect(counts.value).toBe(3);
});

test("DescriptorShortage logs at most once per 10 s", () => {
  let now = 0;
  const { shortage, log } = shortageOf(() => 100, () => now);

  for (let i = 0; i < 5; i++) {
    expect(shortage.explains(connectError("ECONNREFUSED"), FIELDS)).toBe(true);
  }
  expect(log.withMessage(SHORTAGE_LINE)).toHaveLength(1);

  now = 10_000;
  expect(shortage.explains(connectError("ECONNREFUSED"), FIELDS)).toBe(true);
  expect(log.withMessage(SHORTAGE_LINE)).toEqual([expect.anything(), expect.objectContaining({ suppressed: 4 })]);
});

test("DescriptorShortage without a limit explains nothing", () => {
  const log = new LogLines();
  const shortage = new DescriptorShortage(log.logger, undefined, () => 0);

  expect(shortage.explains(connectError("ECONNREFUSED"), FIELDS)).toBe(false);
  expect(log.records).toEqual([]);
});
