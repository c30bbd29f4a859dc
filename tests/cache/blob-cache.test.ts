/**
 * The blob cache in process (cache/blob-cache.ts, with cache/uncacheable.ts),
 * behind the cache front, against the real test registry: the real
 * pass-through and filesystem store inside counting wrappers, so each
 * scenario states what it cost upstream. Through the binary, with real
 * clients and eviction: tests/integration/cache/blob-cache.test.ts.
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { digestOf, inProcessSuite, type InProcessCache } from "../support/cache/in-process";
import { blobPath, type Layer, type TestImage, type Upstream } from "../support/upstream";

let upstream: Upstream;
let cache: InProcessCache;
inProcessSuite((started) => ({ upstream, cache } = started));

/** Each test takes a layer no other test has touched: a cold blob. */
let taken = 0;
function coldLayer(): { repository: string; layer: Layer; bytes: Uint8Array<ArrayBuffer> } {
  const layers = Object.values(upstream.images)
    .filter((image): image is TestImage => image !== undefined && !image.repository.startsWith("private/"))
    .flatMap((image) => image.manifests.flatMap((m) => m.layers.map((layer) => ({ repository: image.repository, layer }))));
  const unique = [...new Map(layers.map((l) => [l.layer.digest, l])).values()];
  const next = unique[taken++];
  if (!next) throw new Error("out of cold layers");
  return { ...next, bytes: new Uint8Array(readFileSync(blobPath(upstream.rootDir, next.layer.digest))) };
}

const cdnGets = (digest: string) => upstream.cdnLog.filter((r) => r.method === "GET" && r.path.includes(digest.slice(7))).length;
const get = (repository: string, digest: string, headers: Record<string, string> = {}, method = "GET") =>
  cache.front.answer(cache.request("blobs", repository, digest, { method, headers }));

test("a miss fills the store from one upstream GET; the next reads are hits that cost the upstream nothing", async () => {
  const { repository, layer, bytes } = coldLayer();
  const miss = await get(repository, layer.digest);
  expect(miss.status).toBe(200);
  expect(miss.headers.get("x-cache")).toBe("MISS");
  expect(miss.headers.get("content-length")).toBe(String(bytes.length));
  expect(miss.headers.get("docker-content-digest")).toBe(layer.digest);
  expect(await digestOf(miss)).toEqual({ digest: layer.digest, length: bytes.length });
  expect(cache.storage.commits).toContain(layer.digest);
  expect(cache.index.getBlob(layer.digest)?.size).toBe(bytes.length);

  for (let i = 0; i < 3; i++) {
    const hit = await get(repository, layer.digest);
    expect(hit.headers.get("x-cache")).toBe("HIT");
    expect(await digestOf(hit)).toEqual({ digest: layer.digest, length: bytes.length });
  }
  expect(cache.remote.callsFor(layer.digest, "GET")).toEqual([{ kind: "fetch", method: "GET", path: `/v2/${repository}/blobs/${layer.digest}`, range: null }]);
  expect(cdnGets(layer.digest)).toBe(1);
});

test("N clients asking for one cold blob while its upstream request is on its way: one upstream GET, one MISS, the rest COALESCED", async () => {
  const { repository, layer, bytes } = coldLayer();
  // Known to be in a public repository: the followers' access check needs no round trip.
  cache.index.putLink("dockerhub", repository, layer.digest);
  cache.index.putRepositoryAccess("dockerhub", repository, true);
  const release = cache.remote.holdNextGet();
  const first = get(repository, layer.digest);
  const followers = Array.from({ length: 4 }, () => get(repository, layer.digest));
  await new Promise((resolve) => setImmediate(resolve)); // every follower has joined the claimed fill
  expect(cache.coordination.isFilling(layer.digest)).toBe(true);
  release();
  const responses = await Promise.all([first, ...followers]);
  expect(responses.map((r) => r.headers.get("x-cache"))).toEqual(["MISS", "COALESCED", "COALESCED", "COALESCED", "COALESCED"]);
  for (const response of responses) expect(await digestOf(response)).toEqual({ digest: layer.digest, length: bytes.length });
  expect(cache.remote.callsFor(layer.digest, "GET")).toHaveLength(1);
  expect(cdnGets(layer.digest)).toBe(1);
  expect(cache.storage.commits.filter((d) => d === layer.digest)).toHaveLength(1);
});

test("Range: a cold request is a 206 from the whole-blob fill; on a hit 206 and 416 come from the store", async () => {
  const { repository, layer, bytes } = coldLayer();
  const cold = await get(repository, layer.digest, { range: "bytes=10-99" });
  expect(cold.status).toBe(206);
  expect(cold.headers.get("x-cache")).toBe("MISS");
  expect(cold.headers.get("content-range")).toBe(`bytes 10-99/${bytes.length}`);
  expect(new Uint8Array(await cold.arrayBuffer())).toEqual(bytes.subarray(10, 100));
  expect(cache.remote.callsFor(layer.digest, "GET")).toEqual([{ kind: "fetch", method: "GET", path: `/v2/${repository}/blobs/${layer.digest}`, range: null }]);

  await waitForCommit(layer.digest);
  const resumed = await get(repository, layer.digest, { range: "bytes=100-" });
  expect(resumed.status).toBe(206);
  expect(resumed.headers.get("x-cache")).toBe("HIT");
  expect(resumed.headers.get("content-range")).toBe(`bytes 100-${bytes.length - 1}/${bytes.length}`);
  expect(new Uint8Array(await resumed.arrayBuffer())).toEqual(bytes.subarray(100));

  const beyond = await get(repository, layer.digest, { range: `bytes=${bytes.length}-` });
  expect(beyond.status).toBe(416);
  expect(beyond.headers.get("content-range")).toBe(`bytes */${bytes.length}`);

  const head = await get(repository, layer.digest, {}, "HEAD");
  expect(head.status).toBe(200);
  expect(head.headers.get("content-length")).toBe(String(bytes.length));
  expect(head.body).toBeNull();
  expect(cache.remote.callsFor(layer.digest, "GET")).toHaveLength(1);
});

test("a cold Range the store cannot take is answered from the one upstream request: the client's slice, one GET upstream, nothing committed", async () => {
  const { repository, layer, bytes } = coldLayer();
  cache.storage.refuseWrites = true;
  try {
    const begins = cache.storage.begins;
    const response = await get(repository, layer.digest, { range: "bytes=5-20" });
    expect(response.status).toBe(206);
    expect(response.headers.get("content-range")).toBe(`bytes 5-20/${bytes.length}`);
    expect(response.headers.get("content-length")).toBe("16");
    expect(new Uint8Array(await response.arrayBuffer())).toEqual(bytes.subarray(5, 21));
    expect(cache.storage.begins).toBe(begins + 1);

    const resumed = await get(repository, layer.digest, { range: "bytes=30-" });
    expect(resumed.status).toBe(206);
    expect(resumed.headers.get("content-range")).toBe(`bytes 30-${bytes.length - 1}/${bytes.length}`);
    expect(new Uint8Array(await resumed.arrayBuffer())).toEqual(bytes.subarray(30));

    const beyond = await get(repository, layer.digest, { range: `bytes=${bytes.length + 5}-` });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get("content-range")).toBe(`bytes */${bytes.length}`);
  } finally {
    cache.storage.refuseWrites = false;
  }
  // One upstream request per client request, each for the whole blob, never a second one for the Range.
  expect(cache.remote.callsFor(layer.digest, "GET")).toHaveLength(3);
  expect(cache.remote.callsFor(layer.digest).filter((call) => call.kind === "forward")).toEqual([]);
  expect(cdnGets(layer.digest)).toBe(3);
  expect(cache.storage.commits).not.toContain(layer.digest);
  expect(cache.index.getBlob(layer.digest)).toBeUndefined();
});

/** A MISS answered to a Range ends before the fill has committed the rest of the blob. */
async function waitForCommit(digest: string): Promise<void> {
  while (!cache.index.getBlob(digest)) await new Promise((resolve) => setTimeout(resolve, 10));
}
