/**
 * The last hours of activity, per minute, for the status page's charts:
 * cache hits and misses, bytes served (from the cache, from the upstream) and
 * requests docxy made upstream. Prometheus keeps history for those who run
 * one; this is for those who only open the page.
 *
 * A fixed ring of buckets (24 h of minutes by default, a few dozen KiB):
 * memory does not grow with traffic or uptime. A bucket is reused once its
 * minute has left the window, so a quiet hour reads as zeros, not as the
 * figures of a day before.
 */

export const SERIES = ["hits", "misses", "cache_bytes", "upstream_bytes", "upstream_requests"] as const;
export type Series = (typeof SERIES)[number];

export interface HistoryOptions {
  bucketMs?: number;
  buckets?: number;
  /** Milliseconds since the epoch; injectable so tests can move time. */
  now?: () => number;
}

export interface HistorySnapshot {
  bucket_seconds: number;
  /** Start of the first bucket, milliseconds since the epoch; bucket i starts at start + i * bucket_seconds. */
  start: number;
  series: Record<Series, number[]>;
}

export class ActivityHistory {
  readonly bucketMs: number;
  readonly buckets: number;
  private readonly now: () => number;
  /** Which bucket number (time / bucketMs) each slot holds now; -1 for never used. */
  private readonly slotOf: Float64Array;
  private readonly values: Record<Series, Float64Array>;

  constructor(options: HistoryOptions = {}) {
    this.bucketMs = options.bucketMs ?? 60_000;
    this.buckets = options.buckets ?? 24 * 60;
    this.now = options.now ?? Date.now;
    this.slotOf = new Float64Array(this.buckets).fill(-1);
    this.values = Object.fromEntries(SERIES.map((name) => [name, new Float64Array(this.buckets)])) as Record<Series, Float64Array>;
  }

  add(series: Series, amount = 1): void {
    const bucket = Math.floor(this.now() / this.bucketMs);
    const slot = bucket % this.buckets;
    if (this.slotOf[slot] !== bucket) {
      // The slot last held a bucket that has left the window.
      for (const name of SERIES) this.values[name][slot] = 0;
      this.slotOf[slot] = bucket;
    }
    this.values[series][slot]! += amount;
  }

  /** The last `count` buckets (all by default), oldest first, the current one last. */
  snapshot(count = this.buckets): HistorySnapshot {
    const n = Math.max(1, Math.min(count, this.buckets));
    const current = Math.floor(this.now() / this.bucketMs);
    const first = current - n + 1;
    const series = Object.fromEntries(SERIES.map((name) => [name, new Array<number>(n).fill(0)])) as Record<Series, number[]>;
    for (let i = 0; i < n; i++) {
      const bucket = first + i;
      const slot = ((bucket % this.buckets) + this.buckets) % this.buckets;
      if (this.slotOf[slot] !== bucket) continue;
      for (const name of SERIES) series[name][i] = this.values[name][slot]!;
    }
    return { bucket_seconds: this.bucketMs / 1000, start: first * this.bucketMs, series };
  }
}
