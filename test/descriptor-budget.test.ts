import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkDescriptorLimit, DescriptorBudget, descriptorReserve, readDescriptorLimit } from "../src/descriptor-budget.ts";
import { Logger } from "../src/logger.ts";

test.each([
  [64, 8],
  [1024, 32],
  [20_000, 128],
  [1_048_576, 128],
])("descriptorReserve of %d is %d", (limit, reserve) => {
  expect(descriptorReserve(limit)).toBe(reserve);
});

test("readDescriptorLimit parses the soft limit", () => {
  const folder = mkdtempSync(join(tmpdir(), "tinylb-limits-"));
  try {
    const path = join(folder, "limits");
    writeFileSync(path, "Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 524288               files     \n");
    expect(readDescriptorLimit(path)).toBe(1024);
    writeFileSync(path, "Max open files            unlimited            unlimited            files     \n");
    expect(readDescriptorLimit(path)).toBeUndefined();
    expect(readDescriptorLimit(join(folder, "missing"))).toBeUndefined();
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
});

test("DescriptorBudget counts exactly only near the limit or once a second", () => {
  let open = 20;
  let counts = 0;
  let now = 0;
  const budget = new DescriptorBudget(1024, 20, () => (counts++, open), () => now);

  // Far from the limit: one exact count, then none until a second has passed.
  expect(budget.exhausted(10)).toBe(false);
  expect(budget.exhausted(11)).toBe(false);
  expect(counts).toBe(1);
  now = 1500;
  expect(budget.exhausted(12)).toBe(false);
  expect(counts).toBe(2);

  // Another thread took descriptors the estimate does not see: the next count finds them.
  open = 1000;
  now = 3000;
  expect(budget.exhausted(12)).toBe(true);
  // Near the limit every call counts.
  expect(budget.exhausted(12)).toBe(true);
  expect(counts).toBe(4);

  open = 900;
  expect(budget.recovered()).toBe(true);
  expect(budget.exhausted(12)).toBe(false);
});

test("DescriptorBudget holds back the admin and metrics caps", () => {
  let open = 70;
  // Limit 100: a reserve of 8 and two caps of 6, so clients may use up to 80 descriptors.
  const budget = new DescriptorBudget(100, 20, () => open, () => 0, 2);
  expect(budget.controlCaps).toBe(12);
  expect(budget.exhausted(25)).toBe(false);
  open = 81;
  expect(budget.exhausted(30)).toBe(true);

  // Accepting starts again once twice the reserve is free besides the caps.
  open = 73;
  expect(budget.recovered()).toBe(false);
  open = 72;
  expect(budget.recovered()).toBe(true);
});

test("checkDescriptorLimit warns when the cap cannot be reached", () => {
  const lines: string[] = [];
  const log = new Logger({ sink: (line) => lines.push(line) });
  const budget = new DescriptorBudget(1024, 24, () => 24);
  checkDescriptorLimit(100, 0, log, budget);
  expect(lines).toEqual([]);

  checkDescriptorLimit(5000, 0, log, budget);
  expect(lines.length).toBe(1);
  expect(lines[0]).toContain("the descriptor limit is too low for the connection cap");
  expect(lines[0]).toContain("reachable=484");
  expect(lines[0]).toContain("neededLimit=10056");

  checkDescriptorLimit(0, 0, log, budget);
  expect(lines[1]).toContain("no global connection cap set");
});

test("checkDescriptorLimit counts the admin and metrics caps", () => {
  const lines: string[] = [];
  const log = new Logger({ sink: (line) => lines.push(line) });

  // Limit 100, reserve 8, 20 open: 72 free; the two caps of 6 leave 60, room for 30 connections.
  checkDescriptorLimit(0, 2, log, new DescriptorBudget(100, 20, () => 20));
  expect(lines[0]).toContain("connections=30");
  expect(lines[0]).toContain("adminAndMetricsCaps=12");

  // Limit 1024, reserve 32, 24 open: 968 free; the two caps of 64 leave 840, room for 420.
  checkDescriptorLimit(0, 2, log, new DescriptorBudget(1024, 24, () => 24));
  expect(lines[1]).toContain("connections=420");
  expect(lines[1]).toContain("adminAndMetricsCaps=128");

  checkDescriptorLimit(450, 2, log, new DescriptorBudget(1024, 24, () => 24));
  expect(lines[2]).toContain("reachable=420");
  expect(lines[2]).toContain("neededLimit=1084");
});
