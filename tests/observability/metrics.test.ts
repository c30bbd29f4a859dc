/**
 * The metrics in process: exchanges counted by route family, bytes by source,
 * cache results by kind; values that live elsewhere read at scrape time, the
 * upstreams' state among them (issue 14: metrics say why an upstream is not up). The
 * same counters after real pulls through the binary:
 * tests/integration/observability/metrics.test.ts.
 */
import { expect, test } from "bun:test";
import { HealthMonitor } from "../../src/observability/health";
import { Metrics, routeOf } from "../../src/observability/metrics";
import { UpstreamClient } from "../../src/upstream/client";
import { UpstreamTable } from "../../src/upstream/table";
import { troubledFakeRegistry, type TroubleMode } from "../support/trouble";

const faulty = troubledFakeRegistry();

/** The value of one sample line (`name{labels} value`), undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test("route families never carry a repository name", () => {
  const cases: [string, string][] = [
    ["/v2/", "v2"],
    ["/v2", "v2"],
    ["/v2/library/alpine/manifests/3.20", "manifests"],
    ["/v2/a/b/c/blobs/sha256:ab", "blobs"],
    ["/v2/acme/app/referrers/sha256:ab", "referrers"],
    ["/v2/acme/app/tags/list", "tags"],
    ["/v2/acme/app/whatever", "v2_other"],
    ["/auth/token", "token"],
    ["/auth/ghcr/token", "token"],
    ["/health", "health"],
    ["/generate_204", "health"],
    ["/metrics", "metrics"],
    ["/admin/cache", "admin"],
    ["/", "other"],
  ];
  expect(cases.map(([path]) => [path, routeOf(path)])).toEqual(cases);
});

test("an exchange counts one request, its bytes by source, and a cache result for blobs and manifests only", async () => {
  const metrics = new Metrics();
  metrics.exchange("blobs", "docker.io", 200, 1000, "HIT");
  metrics.exchange("blobs", "docker.io", 200, 300, "MISS");
  metrics.exchange("manifests", "docker.io", 200, 50, "STALE");
  metrics.exchange("v2", undefined, 401, 86, undefined);
  const text = await metrics.registry.metrics();
  expect(sample(text, 'docxy_http_requests_total{route="blobs",registry="docker.io",status="200"}')).toBe(2);
  expect(sample(text, 'docxy_http_requests_total{route="v2",registry="",status="401"}')).toBe(1);
  expect(sample(text, 'docxy_http_response_bytes_total{source="cache"}')).toBe(1050);
  expect(sample(text, 'docxy_http_response_bytes_total{source="upstream"}')).toBe(386);
  expect(sample(text, 'docxy_cache_requests_total{kind="blob",result="HIT"}')).toBe(1);
  expect(sample(text, 'docxy_cache_requests_total{kind="blob",result="MISS"}')).toBe(1);
  expect(sample(text, 'docxy_cache_requests_total{kind="manifest",result="STALE"}')).toBe(1);
  expect(text).not.toContain('kind="v2"');
});

test("cache size, fills and account quota are read when scraped", async () => {
  let bytes = 10;
  const metrics = new Metrics({
    cacheBytes: () => bytes,
    cacheEntries: () => 2,
    fillsInProgress: () => 1,
    fillsRefused: () => ({ fills: 3 }),
    accounts: () => [
      { upstream: "dockerhub", account: "ci", remaining: 97 },
      { upstream: "dockerhub", account: "unseen", remaining: undefined },
    ],
  });
  expect(sample(await metrics.registry.metrics(), "docxy_cache_size_bytes")).toBe(10);
  bytes = 20;
  const text = await metrics.registry.metrics();
  expect(sample(text, "docxy_cache_size_bytes")).toBe(20);
  expect(sample(text, "docxy_cache_entries")).toBe(2);
  expect(sample(text, "docxy_cache_fills_in_progress")).toBe(1);
  expect(sample(text, 'docxy_cache_fills_refused_total{reason="fills"}')).toBe(3);
  expect(sample(text, 'docxy_upstream_ratelimit_remaining{upstream="dockerhub",account="ci"}')).toBe(97);
  expect(text).not.toContain('account="unseen"');
});

test("the fleet's cache size is a sample only when the node is on a fleet's shared bucket and its ledger was read", async () => {
  let fleetBytes: number | undefined;
  const metrics = new Metrics({ fleetCacheBytes: () => fleetBytes });
  expect(sample(await metrics.registry.metrics(), "docxy_fleet_cache_size_bytes")).toBeUndefined();
  fleetBytes = 123_456;
  expect(sample(await metrics.registry.metrics(), "docxy_fleet_cache_size_bytes")).toBe(123_456);
  expect(sample(await new Metrics().registry.metrics(), "docxy_fleet_cache_size_bytes")).toBeUndefined();
});

test("each upstream's state and reason, as the last /health probe saw it, against the real monitor and an upstream in trouble", async () => {
  const table = new UpstreamTable([{ name: "fake", registry: "fake.io", url: faulty.trouble.url, hosts: [], autoLibraryPrefix: false }], "fake");
  const client = new UpstreamClient({ headerMs: 5000, idleMs: 10_000, maxRedirects: 3 }, "docxy/test");
  const scrape = async (mode: TroubleMode) => {
    await faulty.trouble.set(mode);
    // A fresh monitor per mode: its probes are reused for a few seconds.
    const health = new HealthMonitor(table, client, "test", 300);
    const metrics = new Metrics({ upstreams: () => health.known() });
    // A scrape never probes: before /health has, it shows nothing.
    expect((await metrics.registry.metrics()).split("\n").filter((line) => line.startsWith("docxy_upstream_state{"))).toEqual([]);
    await health.upstreams();
    const text = await metrics.registry.metrics();
    await faulty.trouble.set({ kind: "pass" });
    return text.split("\n").filter((line) => line.startsWith("docxy_upstream_state{"));
  };
  expect(await scrape({ kind: "pass" })).toEqual(['docxy_upstream_state{upstream="fake",state="up",reason=""} 1']);
  expect(await scrape({ kind: "status", status: 429, retryAfter: "5" })).toEqual(['docxy_upstream_state{upstream="fake",state="rate-limited",reason="answered 429"} 1']);
  expect(await scrape({ kind: "status", status: 503 })).toEqual(['docxy_upstream_state{upstream="fake",state="failing",reason="answered 503"} 1']);
  const hung = await scrape({ kind: "hang" });
  expect(hung).toHaveLength(1);
  expect(hung[0]).toStartWith('docxy_upstream_state{upstream="fake",state="unreachable",reason="');
  expect(hung[0]).toContain("did not answer within 0.3s");
});
