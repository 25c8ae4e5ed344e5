import { expect, test } from "bun:test";
import { CONNECT_BUCKETS, CONNECTION_BUCKETS, DurationHistogram } from "../src/duration-histogram.ts";

test.each([
  // A value equal to a bound belongs to that bound's bucket, as Prometheus's `le` (less or equal) means.
  [0, 0],
  [0.5, 0],
  [1, 0],
  [1.5, 1],
  [2, 1],
  [4, 2],
  [4.01, 3],
  [1e9, 3],
])("DurationHistogram puts %p in bucket %p", (seconds, bucket) => {
  const histogram = new DurationHistogram([1, 2, 4]);

  histogram.observe(seconds);

  const expected = [0, 0, 0, 0];
  expected[bucket] = 1;
  expect(histogram.buckets).toEqual(expected);
  expect(histogram.count).toBe(1);
  expect(histogram.sum).toBe(seconds);
});

test("DurationHistogram growthSince returns only new observations", () => {
  const histogram = new DurationHistogram([1, 2]);
  expect(histogram.growthSince(undefined)).toBeUndefined();
  histogram.observe(0.5);
  histogram.observe(3);
  expect(histogram.growthSince(undefined)).toEqual({ buckets: [1, 0, 1], sum: 3.5, count: 2 });

  const sent = histogram.counts();
  expect(histogram.growthSince(sent)).toBeUndefined();
  histogram.observe(1.5);
  expect(histogram.growthSince(sent)).toEqual({ buckets: [0, 1, 0], sum: 1.5, count: 1 });
  // The copy does not follow later observations.
  expect(sent).toEqual({ buckets: [1, 0, 1], sum: 3.5, count: 2 });
});

test("DurationHistogram add sums another thread's counts", () => {
  const histogram = new DurationHistogram([1, 2]);
  histogram.observe(0.25);

  histogram.add({ buckets: [2, 1, 0], sum: 3, count: 3 });

  expect(histogram.counts()).toEqual({ buckets: [3, 1, 0], sum: 3.25, count: 4 });
});

test.each([
  ["CONNECT_BUCKETS", CONNECT_BUCKETS],
  ["CONNECTION_BUCKETS", CONNECTION_BUCKETS],
])("%s ascend strictly", (_name, bounds) => {
  for (let index = 1; index < bounds.length; index++) {
    expect(bounds[index]!).toBeGreaterThan(bounds[index - 1]!);
  }
});
