import { expect, test } from "bun:test";
import { runProbeAttempt } from "../src/probes/probe-attempt.ts";
import { ProbeError } from "../src/probes/probe-error.ts";

test("probe attempt resolves with the first result", async () => {
  const cleanups: unknown[] = [];
  let settleLater: ((result: number | ProbeError) => void) | undefined;

  const result = runProbeAttempt<number>(new AbortController().signal, (attempt) => {
    settleLater = (value) => attempt.settle(value);

    return (value) => cleanups.push(value);
  });
  settleLater!(204);
  settleLater!(new ProbeError("too late"));

  expect(await result).toBe(204);
  expect(cleanups).toEqual([204]);
});

test("probe attempt rejects with its ProbeError", async () => {
  const cleanups: unknown[] = [];
  const failure = new ProbeError("connect failed: connection refused (ECONNREFUSED)");

  const result = runProbeAttempt<void>(new AbortController().signal, (attempt) => {
    queueMicrotask(() => attempt.settle(failure));

    return (value) => cleanups.push(value);
  });

  await expect(result).rejects.toBe(failure);
  expect(cleanups).toEqual([failure]);
});

test("probe attempt settles on abort", async () => {
  const controller = new AbortController();
  const cleanups: unknown[] = [];
  let settled: () => boolean = () => false;

  const result = runProbeAttempt<number>(controller.signal, (attempt) => {
    settled = () => attempt.settled;

    return (value) => cleanups.push(value);
  });
  expect(settled()).toBe(false);
  controller.abort();

  await expect(result).rejects.toThrow(new ProbeError("probe aborted"));
  expect(settled()).toBe(true);
  expect(cleanups).toHaveLength(1);
  expect((cleanups[0] as ProbeError).message).toBe("probe aborted");
});

test("probe attempt skips start after abort", async () => {
  const controller = new AbortController();
  controller.abort();
  let started = false;

  const result = runProbeAttempt<number>(controller.signal, () => {
    started = true;

    return () => undefined;
  });

  await expect(result).rejects.toThrow("probe aborted");
  expect(started).toBe(false);
});
