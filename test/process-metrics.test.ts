import { afterEach, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readProcessMetrics } from "../src/process-metrics.ts";

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const step of cleanup.splice(0).reverse()) {
    step();
  }
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "tinylb-proc-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));

  return dir;
}

function valuesOf(procDir: string): Record<string, number> {
  return Object.fromEntries(readProcessMetrics(procDir).map((metric) => [metric.name, metric.value]));
}

test("readProcessMetrics parses proc files", () => {
  const dir = tempDir();
  // A command name with spaces and a ")" must not shift the fields: utime 250, stime 50, vsize 123456789.
  writeFileSync(join(dir, "stat"), "4242 (tiny lb) x) S 1 4242 4242 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 9 0 495726 123456789 406 18446744073709551615 0\n");
  writeFileSync(join(dir, "status"), "Name:\ttinylb\nVmSize:\t  120563 kB\nVmRSS:\t    2032 kB\n");
  writeFileSync(join(dir, "limits"), "Limit                     Soft Limit           Hard Limit           Units\nMax open files            20000                524288               files\n");
  mkdirSync(join(dir, "fd"));
  for (const fd of ["0", "1", "2"]) {
    writeFileSync(join(dir, "fd", fd), "");
  }

  expect(valuesOf(dir)).toEqual({
    process_cpu_seconds_total: 3,
    process_virtual_memory_bytes: 123456789,
    process_resident_memory_bytes: 2032 * 1024,
    process_open_fds: 3,
    process_max_fds: 20000,
  });
});

test("readProcessMetrics leaves out missing files", () => {
  const dir = tempDir();
  writeFileSync(join(dir, "limits"), "Max open files            unlimited            unlimited            files\n");

  expect(readProcessMetrics(dir)).toEqual([]);
  expect(readProcessMetrics(join(dir, "missing"))).toEqual([]);
});

test("readProcessMetrics reads this process", () => {
  const values = valuesOf("/proc/self");

  expect(values.process_resident_memory_bytes).toBeGreaterThan(1024 * 1024);
  expect(values.process_virtual_memory_bytes).toBeGreaterThanOrEqual(values.process_resident_memory_bytes!);
  expect(values.process_open_fds).toBeGreaterThan(2);
  expect(values.process_max_fds).toBeGreaterThanOrEqual(values.process_open_fds!);
  expect(values.process_cpu_seconds_total).toBeGreaterThan(0);
});
