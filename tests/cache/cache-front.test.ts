/**
 * The cache front in process (cache/cache-front.ts): the one place a read is
 * passed straight through, against the real test registry with the remote
 * counted, so each case shows whether the caches answered or the request
 * went through as the client sent it.
 */
import { expect, test } from "bun:test";
import { digestOf, inProcessSuite, type InProcessCache } from "../support/cache/in-process";
import type { Upstream } from "../support/upstream";

let upstream: Upstream;
let cache: InProcessCache;
inProcessSuite((started) => ({ upstream, cache } = started));

const forwards = () => cache.remote.calls.filter((call) => call.kind === "forward");

test("tag lists are never cached: each one passes through", async () => {
  const before = forwards().length;
  for (let i = 0; i < 2; i++) {
    const response = await cache.front.answer(cache.request("tags", "library/alpine", undefined));
    expect(response.status).toBe(200);
    expect(((await response.json()) as { tags: string[] }).tags.sort()).toEqual(["3.20", "latest"]);
  }
  expect(forwards().slice(before).map((call) => call.path)).toEqual(["/v2/library/alpine/tags/list", "/v2/library/alpine/tags/list"]);
});

test("a blob by a digest other than sha256 passes through (only sha256 is verified)", async () => {
  const digest = "sha512:" + "ab".repeat(64);
  const response = await cache.front.answer(cache.request("blobs", "library/alpine", digest));
  expect(response.status).toBe(404);
  expect(forwards().at(-1)).toEqual({ kind: "forward", method: "GET", path: `/v2/library/alpine/blobs/${digest}`, range: null });
  expect(cache.remote.callsFor(digest).filter((call) => call.kind === "fetch")).toEqual([]);
});

test("a HEAD on a blob not cached passes through as a HEAD and fills nothing; a GET fills it", async () => {
  const layer = upstream.images.app.manifests[0]!.layers[0]!;
  const head = await cache.front.answer(cache.request("blobs", "acme/app", layer.digest, { method: "HEAD" }));
  expect(head.status).toBe(200);
  expect(head.headers.get("content-length")).toBe(String(layer.size));
  expect(cache.remote.callsFor(layer.digest)).toEqual([{ kind: "forward", method: "HEAD", path: `/v2/acme/app/blobs/${layer.digest}`, range: null }]);
  expect(cache.storage.commits).not.toContain(layer.digest);

  const get = await cache.front.answer(cache.request("blobs", "acme/app", layer.digest));
  expect(get.headers.get("x-cache")).toBe("MISS");
  expect(await digestOf(get)).toEqual({ digest: layer.digest, length: layer.size });
  expect(cache.remote.callsFor(layer.digest).filter((call) => call.kind === "forward")).toHaveLength(1);
});

test("clients waiting on a fill that could not start (the upstream has no such blob) pass through, each getting the upstream's answer", async () => {
  const digest = "sha256:" + "0".repeat(64);
  // Known to be in a public repository: the followers' access check needs no round trip.
  cache.index.putLink("dockerhub", "library/alpine", digest);
  cache.index.putRepositoryAccess("dockerhub", "library/alpine", true);
  const release = cache.remote.holdNextGet();
  const first = cache.front.answer(cache.request("blobs", "library/alpine", digest));
  const followers = [1, 2].map(() => cache.front.answer(cache.request("blobs", "library/alpine", digest)));
  await new Promise((resolve) => setImmediate(resolve)); // both followers wait on the claimed fill
  release();
  const responses = await Promise.all([first, ...followers]);
  expect(responses.map((r) => r.status)).toEqual([404, 404, 404]);
  for (const response of responses) expect(((await response.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("BLOB_UNKNOWN");
  expect(cache.remote.callsFor(digest).map((call) => call.kind)).toEqual(["fetch", "forward", "forward"]);
  expect(cache.coordination.isFilling(digest)).toBe(false);
});
