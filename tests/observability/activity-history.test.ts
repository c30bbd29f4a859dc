/** The activity ring behind the status page's charts: buckets, rollover, a bounded window. */
import { expect, test } from "bun:test";
import { ActivityHistory } from "../../src/observability/activity-history";
import { Metrics } from "../../src/observability/metrics";

const clock = (start: number) => {
  const c = { at: start, now: () => c.at };
  return c;
};

test("samples of one minute add up in its bucket; the current minute comes last", () => {
  const c = clock(10 * 60_000 + 5_000);
  const history = new ActivityHistory({ buckets: 4, now: c.now });
  history.add("hits");
  history.add("hits");
  history.add("cache_bytes", 1234);
  c.at += 50_000; // still minute 10
  history.add("misses");
  const snapshot = history.snapshot();
  expect(snapshot.bucket_seconds).toBe(60);
  expect(snapshot.start).toBe(7 * 60_000);
  expect(snapshot.series.hits).toEqual([0, 0, 0, 2]);
  expect(snapshot.series.misses).toEqual([0, 0, 0, 1]);
  expect(snapshot.series.cache_bytes).toEqual([0, 0, 0, 1234]);
  expect(snapshot.series.upstream_requests).toEqual([0, 0, 0, 0]);
});

test("the window moves with time: a new minute starts at zero, old minutes slide out, a reused slot forgets its old figures", () => {
  const c = clock(0);
  const history = new ActivityHistory({ buckets: 3, now: c.now });
  history.add("upstream_requests", 5); // minute 0
  c.at = 60_000;
  history.add("upstream_requests", 7); // minute 1
  expect(history.snapshot().series.upstream_requests).toEqual([0, 5, 7]);
  c.at = 3 * 60_000; // minute 3 reuses minute 0's slot
  expect(history.snapshot().series.upstream_requests).toEqual([7, 0, 0]); // minute 0 left the window, unread
  history.add("upstream_requests");
  expect(history.snapshot().series.upstream_requests).toEqual([7, 0, 1]);
  c.at = 100 * 60_000; // after a long quiet spell
  expect(history.snapshot().series.upstream_requests).toEqual([0, 0, 0]);
});

test("memory is the ring's, whatever the traffic; a snapshot asks for at most the ring", () => {
  const c = clock(0);
  const history = new ActivityHistory({ buckets: 60, now: c.now });
  for (let minute = 0; minute < 10_000; minute++) {
    c.at = minute * 60_000;
    history.add("hits");
  }
  expect(history.snapshot().series.hits).toHaveLength(60);
  expect(history.snapshot(10_000).series.hits).toHaveLength(60);
  expect(history.snapshot(5).series.hits).toEqual([1, 1, 1, 1, 1]);
  expect(history.snapshot(0).series.hits).toHaveLength(1);
});

test("Metrics feeds it where it counts: hits, misses, bytes by source, upstream requests", () => {
  const metrics = new Metrics();
  metrics.exchange("blobs", "docker.io", 200, 1000, "HIT");
  metrics.exchange("manifests", "docker.io", 200, 500, "REVALIDATED");
  metrics.exchange("blobs", "docker.io", 200, 3000, "MISS");
  metrics.exchange("tags", "docker.io", 200, 40, undefined);
  metrics.upstreamAnswered("registry.test", "GET", 200, 0.1);
  metrics.upstreamFailed("registry.test", "timeout");
  const { series } = metrics.history.snapshot(1);
  expect(series.hits).toEqual([2]);
  expect(series.misses).toEqual([1]);
  expect(series.cache_bytes).toEqual([1000]);
  expect(series.upstream_bytes).toEqual([500 + 3000 + 40]); // a revalidated manifest is counted as the byte metric counts it
  expect(series.upstream_requests).toEqual([2]);
});
