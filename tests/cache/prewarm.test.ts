/**
 * Pre-warming in process (cache/prewarm.ts): an image pulled through the
 * cache front as a client pull would, against the real test registry. The
 * first run fetches each manifest and blob once; a second finds them all
 * cached and costs the upstream no GET. Through the admin API:
 * tests/http/routes/admin.test.ts.
 */
import { expect, test } from "bun:test";
import { prewarm, type PrewarmStep } from "../../src/cache/prewarm";
import type { RegistryError } from "../../src/oci/errors";
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

test("a glob, a platform or a name docker pull would refuse is refused as NAME_INVALID, before any request", async () => {
  for (const image of ["library/*:latest", "alpine:3.*", "alpine linux/amd64", "Alpine"]) {
    const refused = await run(image, []).then(() => undefined, (error: RegistryError) => error);
    expect([image, refused?.ociCode, refused?.status]).toEqual([image, "NAME_INVALID", 400]);
  }
});

test("the index, the chosen platform's manifest, its config and layers are fetched once; a second run is all hits", async () => {
  const { alpine } = upstream.images;
  const amd64 = alpine.manifests.find((m) => m.platform.architecture === "amd64")!;
  const first = await run("alpine", ["linux/amd64"]); // docker.io/library/alpine:latest, as docker pull reads it
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
