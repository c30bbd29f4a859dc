/**
 * The manifest cache in process (cache/manifest-cache.ts) behind the cache
 * front, against the real test registry with the remote counted: tags
 * remembered for their TTL and then revalidated with a HEAD, manifests by
 * digest served from the store to clients that accept their type. Through
 * the binary, with stale answers while the upstream is down and the body
 * caps: tests/integration/cache/manifest-cache.test.ts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { inProcessCache, type InProcessCache } from "../support/cache/in-process";
import { ALL_MANIFESTS } from "../support/cache/harness";
import { MediaType, startUpstream, type Upstream } from "../support/upstream";

let upstream: Upstream;
let cache: InProcessCache;
let revalidating: InProcessCache;
beforeAll(async () => {
  upstream = await startUpstream({ onlyThroughProxy: true });
  cache = await inProcessCache(upstream);
  revalidating = await inProcessCache(upstream, { tagTtlMs: 0 });
}, 120_000);
afterAll(async () => {
  cache?.close();
  revalidating?.close();
  await upstream?.stop();
});

const manifest = (c: InProcessCache, repository: string, reference: string, accept = ALL_MANIFESTS, method = "GET") =>
  c.front.answer(c.request("manifests", repository, reference, { method, headers: { accept } }));

test("a tag is fetched once (a HEAD for its digest, then a GET of that digest), stored under its digest, and answered from the store for its TTL", async () => {
  const { alpine } = upstream.images;
  const miss = await manifest(cache, "library/alpine", "latest");
  expect(miss.status).toBe(200);
  expect(miss.headers.get("x-cache")).toBe("MISS");
  expect(miss.headers.get("docker-content-digest")).toBe(alpine.digest);
  expect(miss.headers.get("content-type")).toBe(alpine.mediaType);
  expect(new Uint8Array(await miss.arrayBuffer())).toEqual(alpine.bytes);
  expect(cache.remote.callsFor("latest").map((call) => `${call.kind} ${call.method}`)).toEqual(["fetch HEAD"]);
  expect(cache.remote.callsFor(alpine.digest, "GET")).toHaveLength(1);
  expect(cache.storage.commits).toContain(alpine.digest);

  const hit = await manifest(cache, "library/alpine", "latest");
  expect(hit.headers.get("x-cache")).toBe("HIT");
  expect(new Uint8Array(await hit.arrayBuffer())).toEqual(alpine.bytes);
  expect(cache.remote.callsFor("latest")).toHaveLength(1);

  const byDigest = await manifest(cache, "library/alpine", alpine.digest);
  expect(byDigest.headers.get("x-cache")).toBe("HIT");
  expect(new Uint8Array(await byDigest.arrayBuffer())).toEqual(alpine.bytes);
  expect(cache.remote.callsFor(alpine.digest, "GET")).toHaveLength(1);
});

test("past its TTL a tag is revalidated with one HEAD and the stored manifest served as REVALIDATED", async () => {
  const { nginx } = upstream.images;
  expect((await manifest(revalidating, "library/nginx", "latest")).headers.get("x-cache")).toBe("MISS");
  const again = await manifest(revalidating, "library/nginx", "latest");
  expect(again.headers.get("x-cache")).toBe("REVALIDATED");
  expect(new Uint8Array(await again.arrayBuffer())).toEqual(nginx.bytes);
  expect(revalidating.remote.callsFor("latest").map((call) => call.method)).toEqual(["HEAD", "HEAD"]);
  expect(revalidating.remote.callsFor(nginx.digest, "GET")).toHaveLength(1);
});

test("a manifest cached by digest goes upstream for a client whose Accept does not take its type; a HEAD not cached passes through", async () => {
  const child = upstream.images.alpine.manifests[0]!;
  expect((await manifest(cache, "library/alpine", child.digest)).headers.get("x-cache")).toBe("MISS");
  expect(cache.index.getBlob(child.digest)?.mediaType).toBe(MediaType.dockerManifest);

  const picky = await manifest(cache, "library/alpine", child.digest, MediaType.ociManifest);
  expect(picky.headers.get("x-cache")).not.toBe("HIT");
  expect(cache.remote.callsFor(child.digest, "GET")).toHaveLength(2);

  const other = upstream.images.app.manifests[0]!;
  const head = await manifest(cache, "acme/app", other.digest, ALL_MANIFESTS, "HEAD");
  expect(head.status).toBe(200);
  expect(head.headers.get("docker-content-digest")).toBe(other.digest);
  expect(cache.remote.callsFor(other.digest)).toEqual([{ kind: "forward", method: "HEAD", path: `/v2/acme/app/manifests/${other.digest}`, range: null }]);
});
