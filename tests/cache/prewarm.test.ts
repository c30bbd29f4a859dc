/**
 * Pre-warming in process (cache/prewarm.ts): an image pulled through the
 * cache front as a client pull would, against the real test registry. The
 * first run fetches each manifest and blob once; a second finds them all
 * cached and costs the upstream no GET. Through the admin API:
 * tests/http/routes/admin.test.ts.
 */
import { expect, test } from "bun:test";
import { parseImage, prewarm, type PrewarmStep } from "../../src/cache/prewarm";
import { UpstreamTable } from "../../src/upstream/table";
import { inProcessSuite, upstreamEntry, type InProcessCache } from "../support/cache/in-process";
import type { Upstream } from "../support/upstream";

let upstream: Upstream;
let cache: InProcessCache;
inProcessSuite((started) => ({ upstream, cache } = started));

async function run(image: string, platforms: string[]): Promise<PrewarmStep[]> {
  const steps: PrewarmStep[] = [];
  for await (const step of prewarm(cache.front, new UpstreamTable([upstreamEntry(upstream)], "dockerhub"), image, platforms)) steps.push(step);
  return steps;
}

test("image references are normalised the way Docker does", () => {
  expect(parseImage("alpine")).toEqual({ registry: "docker.io", repository: "library/alpine", reference: "latest" });
  expect(parseImage("acme/app:v1")).toEqual({ registry: "docker.io", repository: "acme/app", reference: "v1" });
  expect(parseImage("localhost:5000/x/y@sha256:ab")).toEqual({ registry: "localhost:5000", repository: "x/y", reference: "sha256:ab" });
});

test("the index, the chosen platform's manifest, its config and layers are fetched once; a second run is all hits", async () => {
  const { alpine } = upstream.images;
  const amd64 = alpine.manifests.find((m) => m.platform.architecture === "amd64")!;
  const first = await run("alpine:latest", ["linux/amd64"]);
  expect(first.map((s) => `${s.kind} ${s.digest} ${s.cache}`)).toEqual([
    `manifest ${alpine.digest} MISS`,
    `manifest ${amd64.digest} MISS`,
    ...[amd64.config, ...amd64.layers].map((d) => `blob ${d.digest} MISS`),
  ]);
  expect(first.filter((s) => s.kind === "blob").map((s) => s.bytes)).toEqual([amd64.config, ...amd64.layers].map((d) => d.size));
  const gets = cache.remote.calls.filter((call) => call.method === "GET").length;

  const second = await run("alpine:latest", ["linux/amd64"]);
  expect(second.map((s) => s.cache)).toEqual(["HIT", "HIT", ...first.slice(2).map(() => "HIT")]);
  expect(cache.remote.calls.filter((call) => call.method === "GET").length).toBe(gets);
});
