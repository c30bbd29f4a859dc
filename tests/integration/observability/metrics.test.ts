/** /metrics after real pulls: the counters move by exactly what happened. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { json, sha256, startProxiedUpstream, type ProxiedUpstream } from "../../support/proxied-upstream";

let env: ProxiedUpstream;
beforeAll(async () => {
  env = await startProxiedUpstream();
}, 60_000);
afterAll(async () => {
  await env?.stop();
});

/** The value of one sample line (`name{labels} value`), 0 when absent. */
function sample(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

async function scrape(): Promise<string> {
  const response = await fetch(`${env.docxy.url}/metrics`);
  expect(response.headers.get("content-type")).toContain("text/plain");
  return response.text();
}

/** Exchanges are counted when their response closes: wait until `series` reaches `value`. */
async function settled(series: string, value: number): Promise<string> {
  let text = "";
  for (let i = 0; i < 50; i++) {
    text = await scrape();
    if (sample(text, series) >= value) break;
    await Bun.sleep(20);
  }
  return text;
}

test("a MISS then a HIT of one blob move the request, cache and byte counters by exactly that", async () => {
  const layer = env.upstream.images.app.manifests[0]!.layers[0]!;
  const { token } = await json(await fetch(`${env.docxy.url}/auth/dockerhub/token?scope=repository:acme/app:pull`));
  const before = await scrape();
  const blobsOk = 'docxy_http_requests_total{route="blobs",registry="docker.io",status="200"}';
  for (const expected of ["MISS", "HIT"]) {
    const response = await fetch(`${env.docxy.url}/v2/acme/app/blobs/${layer.digest}`, { headers: { authorization: `Bearer ${token}` } });
    expect(response.headers.get("x-cache")).toBe(expected);
    expect(sha256(await response.arrayBuffer())).toBe(layer.digest);
    // The client has every byte once the digest is verified; the commit follows. Wait for it.
    for (let i = 0; i < 100 && sample(await scrape(), "docxy_cache_fills_in_progress") > 0; i++) await Bun.sleep(20);
  }
  const after = await settled(blobsOk, sample(before, blobsOk) + 2);
  const moved = (series: string) => sample(after, series) - sample(before, series);
  expect(moved(blobsOk)).toBe(2);
  expect(moved('docxy_cache_requests_total{kind="blob",result="MISS"}')).toBe(1);
  expect(moved('docxy_cache_requests_total{kind="blob",result="HIT"}')).toBe(1);
  expect(moved('docxy_http_response_bytes_total{source="cache"}')).toBe(layer.size);
  expect(moved('docxy_http_response_bytes_total{source="upstream"}')).toBeGreaterThanOrEqual(layer.size);
  expect(sample(after, "docxy_cache_size_bytes")).toBeGreaterThanOrEqual(layer.size);
  expect(sample(after, "docxy_cache_entries")).toBeGreaterThanOrEqual(1);
  const registryHost = new URL(env.upstream.registryUrl).host;
  expect(sample(after, `docxy_upstream_request_duration_seconds_count{host="${registryHost}",method="GET",status="307"}`)).toBeGreaterThanOrEqual(1);
  expect(after).toContain("docxy_active_connections");
});

test("an unreachable upstream is counted as such", async () => {
  const before = await scrape();
  await fetch(`${env.docxy.url}/v2/library/x/manifests/latest?ns=ghcr.io`); // ghcr.io is not reachable here
  const after = await scrape();
  const series = 'docxy_upstream_failures_total{host="ghcr.io",reason="unreachable"}';
  expect(sample(after, series) - sample(before, series)).toBeGreaterThanOrEqual(1);
});
