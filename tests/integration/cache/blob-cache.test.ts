/**
 * The blob cache against the real upstream (distribution 2.8 + token server +
 * a CDN that logs every request), through the compiled binary: warm pulls
 * cost the upstream nothing, concurrent cold pulls make one download, Range
 * works on a blob being filled, and eviction keeps to max_size without ever
 * pulling a blob from under a reader. Each scenario that needs a cold cache
 * gets a docxy of its own (its own DOCXY_CACHE_DIR) in front of the same
 * upstream.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  docxyToken,
  isCached,
  registryLines,
  registryLogSettled,
  registryToml,
  sha256,
  startCachingDocxy,
  streamingGet,
  tempFiles,
  waitFor,
  type CachingDocxy,
} from "../../support/cache/harness";
import { skopeoCopyOk } from "../../support/skopeo";
import { blobPath, startUpstream, type Layer, type Upstream } from "../../support/upstream";

let upstream: Upstream;
let docxy: CachingDocxy;
const others: CachingDocxy[] = [];

beforeAll(async () => {
  upstream = await startUpstream({ onlyThroughProxy: true, bigLayer: true });
  docxy = await startCachingDocxy(registryToml(upstream));
}, 180_000);
afterAll(async () => {
  await Promise.all([docxy, ...others].map((d) => d?.stop()));
  await upstream?.stop();
});

/** A docxy with a cold cache of its own in front of the same upstream. */
async function coldDocxy(extraToml = ""): Promise<CachingDocxy> {
  const d = await startCachingDocxy(registryToml(upstream) + extraToml);
  others.push(d);
  return d;
}

const bigLayer = (): Layer => upstream.images.big!.manifests[0]!.layers[0]!;
const cdnGets = (digest: string) => upstream.cdnLog.filter((r) => r.method === "GET" && r.path.endsWith(`/${digest.slice(7)}/data`)).length;
const blobUrl = (d: CachingDocxy, repository: string, digest: string) => `${d.url}/v2/${repository}/blobs/${digest}`;

async function bearer(d: CachingDocxy, repository: string): Promise<string> {
  return `Bearer ${await docxyToken(d.url, repository)}`;
}

/** GETs a blob, hashing the body as it streams (never buffering 256 MiB per client). */
async function getBlob(url: string, authorization: string, headers: Record<string, string> = {}) {
  const response = await fetch(url, { headers: { authorization, ...headers } });
  const hasher = new Bun.CryptoHasher("sha256");
  let length = 0;
  for await (const chunk of response.body!) {
    hasher.update(chunk);
    length += chunk.length;
  }
  return {
    status: response.status,
    cache: response.headers.get("x-cache"),
    contentLength: response.headers.get("content-length"),
    dockerDigest: response.headers.get("docker-content-digest"),
    contentRange: response.headers.get("content-range"),
    digest: `sha256:${hasher.digest("hex")}`,
    length,
  };
}

describe("warm pulls cost the upstream nothing", () => {
  test("a blob GET is a MISS with one CDN download; the next ones never download again, and a HIT comes from disk", async () => {
    const layer = upstream.images.manytags.manifests[0]!.layers[0]!;
    const auth = await bearer(docxy, "library/manytags");
    const url = blobUrl(docxy, "library/manytags", layer.digest);
    const whole = { status: 200, digest: layer.digest, length: layer.size, contentLength: String(layer.size), dockerDigest: layer.digest };
    expect(await getBlob(url, auth)).toMatchObject({ ...whole, cache: "MISS" });
    // The client may have its last byte while the verified blob is still being renamed into place.
    const right = await getBlob(url, auth);
    expect(right).toMatchObject(whole);
    expect(["COALESCED", "HIT"]).toContain(right.cache!);
    await waitFor(() => isCached(docxy.cacheDir, layer.digest), "the commit");
    expect(await getBlob(url, auth)).toMatchObject({ ...whole, cache: "HIT" });
    expect(await getBlob(url, auth, { range: "bytes=-10" })).toMatchObject({ status: 206, cache: "HIT", length: 10, contentRange: `bytes ${layer.size - 10}-${layer.size - 1}/${layer.size}` });
    const head = await fetch(url, { method: "HEAD", headers: { authorization: auth } });
    expect({ status: head.status, cache: head.headers.get("x-cache"), length: head.headers.get("content-length"), digest: head.headers.get("docker-content-digest") }).toEqual({
      status: 200,
      cache: "HIT",
      length: String(layer.size),
      digest: layer.digest,
    });
    expect(cdnGets(layer.digest)).toBe(1);
  });

  const copy = (ref: string, all: boolean) => skopeoCopyOk(new URL(docxy.url).host, ref, all);

  test.each([
    ["acme/app:v1", false, "app"],
    ["library/alpine:latest", true, "alpine"],
  ] as const)("skopeo copy %s (--all: %p) cold, then warm: same digests, no CDN request, no manifest GET upstream", async (ref, all, name) => {
    const image = upstream.images[name];
    const repository = ref.split(":")[0]!;
    const manifestGets = () => registryLines(upstream, new RegExp(`"GET /v2/${repository}/manifests/`)).length;

    const cold = await copy(ref, all);
    expect(cold["manifest.json"]).toBe(image.digest);
    for (const m of image.manifests) for (const l of [m.config, ...m.layers]) expect(cold[l.digest.slice(7)]).toBe(l.digest);

    await registryLogSettled(upstream);
    const cdnBefore = upstream.cdnLog.length;
    const getsBefore = manifestGets();
    const warm = await copy(ref, all);
    await registryLogSettled(upstream);

    expect(warm).toEqual(cold);
    expect(upstream.cdnLog.length).toBe(cdnBefore);
    expect(manifestGets()).toBe(getsBefore); // neither by tag (within tag_ttl) nor by digest
    for (const m of image.manifests) expect(isCached(docxy.cacheDir, m.layers[0]!.digest)).toBe(true);
  }, 60_000);
});

describe("coalescing", () => {
  test("16 concurrent cold GETs of a 256 MiB layer: one CDN download, one MISS, every body whole", async () => {
    const d = await coldDocxy();
    const layer = bigLayer();
    const auth = await bearer(d, "library/big");
    const results = await Promise.all(Array.from({ length: 16 }, () => getBlob(blobUrl(d, "library/big", layer.digest), auth)));
    for (const r of results) {
      expect(r).toMatchObject({ status: 200, digest: layer.digest, length: layer.size, contentLength: String(layer.size), dockerDigest: layer.digest });
    }
    const caches = results.map((r) => r.cache);
    console.log(`16 concurrent cold GETs: X-Cache ${JSON.stringify(caches)}, CDN GETs ${cdnGets(layer.digest)}`);
    expect({ cdnGets: cdnGets(layer.digest), misses: caches.filter((c) => c === "MISS").length }).toEqual({ cdnGets: 1, misses: 1 });
    for (const c of caches) expect(["MISS", "COALESCED", "HIT"]).toContain(c!);
    await waitFor(() => isCached(d.cacheDir, layer.digest), "the commit");
  }, 60_000);

  test("Range requests while the layer is being filled: 206, Content-Range, exactly their slice", async () => {
    const d = await coldDocxy();
    const layer = bigLayer();
    const auth = await bearer(d, "library/big");
    const file = Bun.file(blobPath(upstream.rootDir, layer.digest));
    const cdnBefore = cdnGets(layer.digest);
    const first = streamingGet(blobUrl(d, "library/big", layer.digest), { authorization: auth });
    expect((await first.head).headers["x-cache"]).toBe("MISS");

    const [head, tail] = await Promise.all([
      fetch(blobUrl(d, "library/big", layer.digest), { headers: { authorization: auth, range: "bytes=0-1023" } }),
      getBlob(blobUrl(d, "library/big", layer.digest), auth, { range: "bytes=1000000-" }),
    ]);
    const headBytes = new Uint8Array(await head.arrayBuffer());
    console.log(`Range on a filling blob: X-Cache ${head.headers.get("x-cache")} and ${tail.cache}`);
    expect(head.status).toBe(206);
    expect(head.headers.get("content-range")).toBe(`bytes 0-1023/${layer.size}`);
    expect(head.headers.get("content-length")).toBe("1024");
    expect(headBytes).toEqual(await file.slice(0, 1024).bytes());
    expect(["COALESCED", "HIT"]).toContain(head.headers.get("x-cache")!);

    expect(tail).toMatchObject({ status: 206, contentRange: `bytes 1000000-${layer.size - 1}/${layer.size}`, length: layer.size - 1_000_000 });
    expect(tail.digest).toBe(sha256(await file.slice(1_000_000).bytes()));
    expect(["COALESCED", "HIT"]).toContain(tail.cache!);

    expect(await first.done).toEqual({ digest: layer.digest, length: layer.size });
    expect(cdnGets(layer.digest) - cdnBefore).toBe(1);
    expect(upstream.cdnLog.filter((r) => r.path.includes(layer.digest.slice(7)) && r.range)).toEqual([]);
  }, 60_000);
});

describe("containerd 2.x request shapes (PR #10177 parallel layer ranges; Range: bytes=0- on manifests)", () => {
  /** sha256 of bytes [start, end] of the upstream's copy, streamed. */
  const sliceDigest = async (digest: string, start: number, end: number) => {
    const hasher = new Bun.CryptoHasher("sha256");
    for await (const chunk of Bun.file(blobPath(upstream.rootDir, digest)).slice(start, end + 1).stream()) hasher.update(chunk);
    return `sha256:${hasher.digest("hex")}`;
  };

  test("a cold layer split into 4 parallel Range GETs: one whole CDN download, each a 206 with its exact slice", async () => {
    const d = await coldDocxy();
    const layer = bigLayer();
    const auth = await bearer(d, "library/big");
    const cdnBefore = cdnGets(layer.digest);
    const part = Math.ceil(layer.size / 4);
    const ranges = [0, 1, 2, 3].map((i) => [i * part, Math.min((i + 1) * part, layer.size) - 1] as const);
    const results = await Promise.all(ranges.map(([start, end]) => getBlob(blobUrl(d, "library/big", layer.digest), auth, { range: `bytes=${start}-${end}` })));
    for (const [i, [start, end]] of ranges.entries()) {
      expect(results[i]).toMatchObject({ status: 206, contentRange: `bytes ${start}-${end}/${layer.size}`, contentLength: String(end - start + 1), length: end - start + 1 });
      expect(results[i]!.digest).toBe(await sliceDigest(layer.digest, start, end));
    }
    console.log(`4 parallel cold Range GETs: X-Cache ${JSON.stringify(results.map((r) => r.cache))}`);
    expect(cdnGets(layer.digest) - cdnBefore).toBe(1);
    expect(upstream.cdnLog.filter((r) => r.path.includes(layer.digest.slice(7)) && r.range)).toEqual([]);
    await waitFor(() => isCached(d.cacheDir, layer.digest), "the commit");
  }, 60_000);

  test("a manifest GET with Range: bytes=0- gets the whole manifest as a 200, cold and cached, by tag and by digest", async () => {
    const d = await coldDocxy();
    const app = upstream.images.app.manifests[0]!;
    const headers = { authorization: await bearer(d, "acme/app"), accept: app.mediaType, range: "bytes=0-" };
    for (const expected of ["MISS", "HIT"]) {
      for (const reference of ["v1", app.digest]) {
        const response = await fetch(`${d.url}/v2/acme/app/manifests/${reference}`, { headers });
        const bytes = new Uint8Array(await response.arrayBuffer());
        expect([response.status, response.headers.get("docker-content-digest"), sha256(bytes), bytes.length]).toEqual([200, app.digest, app.digest, app.size]);
        if (reference === "v1") expect(response.headers.get("x-cache")).toBe(expected);
      }
    }
  });
});

describe("eviction", () => {
  test("max_size: pulling a second image evicts the first one's layers (least recently used first)", async () => {
    const app = upstream.images.app.manifests[0]!.layers;
    const nginx = upstream.images.nginx.manifests[0]!.layers;
    const sum = (ls: Layer[]) => ls.reduce((n, l) => n + l.size, 0);
    const maxSize = Math.max(sum(app), sum(nginx));
    const d = await coldDocxy(`[cache]\nmax_size = ${maxSize}\n`);

    // What LRU must remove: the oldest blobs until the total fits.
    const order = [...app.map((l) => ({ l, repo: "acme/app" })), ...nginx.map((l) => ({ l, repo: "library/nginx" }))];
    const kept: typeof order = [];
    const evicted: typeof order = [];
    for (const entry of order) {
      kept.push(entry);
      while (sum(kept.map((k) => k.l)) > maxSize) evicted.push(kept.shift()!);
    }
    expect(evicted.map((e) => e.repo)).toContain("acme/app");

    for (const { l, repo } of order) {
      const r = await getBlob(blobUrl(d, repo, l.digest), await bearer(d, repo));
      expect(r).toMatchObject({ status: 200, cache: "MISS", digest: l.digest });
      await Bun.sleep(5); // distinct last-access milliseconds, so LRU order is the pull order
    }
    for (const { l } of evicted) await waitFor(() => !isCached(d.cacheDir, l.digest), `eviction of ${l.digest}`);
    for (const { l } of kept) expect(isCached(d.cacheDir, l.digest)).toBe(true);
    for (const { l, repo } of evicted) {
      const again = await getBlob(blobUrl(d, repo, l.digest), await bearer(d, repo));
      expect(again).toMatchObject({ status: 200, cache: "MISS", digest: l.digest, length: l.size });
    }
  }, 30_000);

  test("a blob being read from disk (HIT) is not evicted mid-read, and is once the read is over", async () => {
    const layer = bigLayer();
    const [x, y] = upstream.images.app.manifests[0]!.layers as [Layer, Layer];
    const z = upstream.images.nginx.manifests[0]!.layers[0]!;
    const d = await coldDocxy(`[cache]\nmax_size = ${layer.size + 1}\n`);
    const auth = await bearer(d, "library/big");
    expect(await getBlob(blobUrl(d, "library/big", layer.digest), auth)).toMatchObject({ cache: "MISS", digest: layer.digest });
    await waitFor(() => isCached(d.cacheDir, layer.digest), "the commit");

    const reader = streamingGet(blobUrl(d, "library/big", layer.digest), { authorization: auth });
    expect((await reader.head).headers["x-cache"]).toBe("HIT");
    await reader.atLeast(1024 * 1024);
    reader.pause();

    // Two more commits push the total over max_size; each runs an eviction pass, oldest first.
    const appAuth = await bearer(d, "acme/app");
    await getBlob(blobUrl(d, "acme/app", x.digest), appAuth);
    await getBlob(blobUrl(d, "acme/app", y.digest), appAuth);
    await waitFor(() => !isCached(d.cacheDir, x.digest), "an eviction pass past the big layer");
    expect(isCached(d.cacheDir, layer.digest)).toBe(true);

    reader.resume();
    expect(await reader.done).toEqual({ digest: layer.digest, length: layer.size });
    await getBlob(blobUrl(d, "library/nginx", z.digest), await bearer(d, "library/nginx"));
    await waitFor(() => !isCached(d.cacheDir, layer.digest), "eviction of the big layer once nobody reads it");
  }, 60_000);

  test("a client following a fill is not cut off when the just-committed blob exceeds max_size", async () => {
    const layer = bigLayer();
    const [x, y] = upstream.images.app.manifests[0]!.layers as [Layer, Layer];
    const d = await coldDocxy(`[cache]\nmax_size = "1MiB"\n`);
    const reader = streamingGet(blobUrl(d, "library/big", layer.digest), { authorization: await bearer(d, "library/big") });
    expect((await reader.head).headers["x-cache"]).toBe("MISS");
    await reader.atLeast(1024 * 1024);
    reader.pause(); // the fill goes on at the upstream's pace and commits meanwhile
    await waitFor(() => upstream.cdnLog.some((r) => r.path.includes(layer.digest.slice(7))) && tempFiles(d.cacheDir).length === 0, "the fill to end", 30_000);

    const appAuth = await bearer(d, "acme/app");
    await fetch(blobUrl(d, "acme/app", x.digest), { headers: { authorization: appAuth } }).then((r) => r.arrayBuffer()).catch(() => undefined);
    await fetch(blobUrl(d, "acme/app", y.digest), { headers: { authorization: appAuth } }).then((r) => r.arrayBuffer()).catch(() => undefined);
    await waitFor(() => !isCached(d.cacheDir, layer.digest) || !isCached(d.cacheDir, x.digest), "an eviction pass");
    const stillThere = isCached(d.cacheDir, layer.digest);

    reader.resume();
    const got = await reader.done;
    expect({ stillThereMidRead: stillThere, ...got }).toEqual({ stillThereMidRead: true, digest: layer.digest, length: layer.size });
  }, 60_000);
});
