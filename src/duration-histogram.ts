/**
 * Upper bounds in seconds of the `tinylb_backend_connect_duration_seconds` buckets. A connect
 * on loopback or within a rack takes roughly 50 µs to 1 ms (an estimate), and one over a WAN
 * 10 to 300 ms, so the buckets start at 100 µs. The default buckets of the Prometheus Go
 * client (`DefBuckets`) start at 5 ms. They end at 10 s, above the default connect timeout of 3 s.
 */
export const CONNECT_BUCKETS: readonly number[] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * Upper bounds in seconds of the `tinylb_connection_duration_seconds` buckets: from 1 ms
 * for a short request on loopback up to 4 h for watches and HTTP/2 connections of
 * Kubernetes clients, which stay open for hours.
 */
export const CONNECTION_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600, 1800, 3600, 14400];

/**
 * Observations of a histogram as plain data, for the counter deltas of relay workers.
 * `buckets[i]` counts the observations in bucket i alone, not cumulated, and the last entry
 * counts those above the highest bound.
 */
export interface HistogramCounts {
  buckets: number[];
  /** Sum of the observed values, in seconds. */
  sum: number;
  count: number;
}

/**
 * A Prometheus histogram of durations in seconds with fixed bucket bounds. Observing
 * allocates nothing and scans the bounds from the lowest, so a short duration costs a few
 * comparisons.
 */
export class DurationHistogram {
  readonly bounds: readonly number[];
  /** Observations per bucket, not cumulated; the last entry counts those above the highest bound. */
  readonly buckets: number[];
  /** Sum of the observed values, in seconds. */
  sum = 0;
  count = 0;

  /** @param bounds upper bounds in seconds, in ascending order. */
  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.buckets = new Array<number>(bounds.length + 1).fill(0);
  }

  /** Records one duration, in seconds. */
  observe(seconds: number): void {
    const bounds = this.bounds;
    let index = 0;
    while (index < bounds.length && seconds > bounds[index]!) {
      index++;
    }
    this.buckets[index]!++;
    this.sum += seconds;
    this.count++;
  }

  /** Adds observations made elsewhere with the same bounds, such as a relay worker's delta. */
  add(counts: HistogramCounts): void {
    for (let index = 0; index < this.buckets.length; index++) {
      this.buckets[index]! += counts.buckets[index] ?? 0;
    }
    this.sum += counts.sum;
    this.count += counts.count;
  }

  /** Returns a copy of the observations. */
  counts(): HistogramCounts {
    return { buckets: [...this.buckets], sum: this.sum, count: this.count };
  }

  /** Returns the observations made since `before` (a copy from `counts`), or undefined when there were none. */
  growthSince(before: HistogramCounts | undefined): HistogramCounts | undefined {
    if (this.count === (before?.count ?? 0)) {
      return undefined;
    }
    if (before === undefined) {
      return this.counts();
    }

    return {
      buckets: this.buckets.map((count, index) => count - (before.buckets[index] ?? 0)),
      sum: this.sum - before.sum,
      count: this.count - before.count,
    };
  }
}
