/**
 * The blob and manifest caches on S3Storage (cache/s3-storage.ts), in process, against the real
 * test registry and a real Swift (tests/support/swift.ts): a fill streams into the bucket; a
 * second cache with its own index on the same bucket (another node of a fleet) serves what the
 * first stored without asking the upstream for its bytes, behind the same access gate; with
 * Swift's proxy down pulls still get their bytes from the upstream and nothing is committed, and
 * the watched store says so (cache/watched-storage.ts). Through the binary with skopeo:
 * tests/integration/fleet/s3-storage.test.ts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TempBlob } from "../../src/cache/blob-storage";
import { Fill } from "../../src/cache/fill";
import { S3Storage } from "../../src/cache/s3-storage";
import { WatchedStorage } from "../../src/cache/watched-storage";
import { sha256 } from "../support/layers";
import { digestOf, inProcessCache, type InProcessCache } from "../support/cache/in-process";
import { startSwift, type Swift } from "../support/swift";
import { startTrouble } from "../support/trouble";
import { startUpstream, type Layer, type ManifestInfo, type TestImage, type Upstream } from "../support/upstream";

const BUCKET = "fleet";
let upstream: Upstream;
let swift: Swift;
let bucket: Bun.S3Client;
const spools = mkdtempSync(join(tmpdir(), "docxy-s3-blob-cache-"));
/** Two nodes on one bucket, each with its own index and spool. */
let first: InProcessCache;
let second: InProcessCache;
const watched: WatchedStorage[] = [];

async function node(name: string): Promise<InProcessCache> {
  const { endpoint, accessKeyId, secretAccessKey, region } = swift;
  return inProcessCache(upstream, {
    storage: async () => {
      const storage = new WatchedStorage(
        await S3Storage.open({ endpoint, accessKeyId, secretAccessKey, region, bucket: BUCKET, spoolDir: join(spools, name) }),
        "s3",
      );
      watched.push(storage);
      return storage;
    },
  });
}

beforeAll(async () => {
  [upstream, swift] = await Promise.all([startUpstream({ onlyThroughProxy: true }), startSwift()]);
  await swift.createBucket(BUCKET);
  const { endpoint, accessKeyId, secretAccessKey, region } = swift;
  bucket = new Bun.S3Client({ endpoint, accessKeyId, secretAccessKey, region, bucket: BUCKET });
  first = await node("first");
  second = await node("second");
}, 120_000);
afterAll(async () => {
  first?.close();
  second?.close();
  await Promise.all([swift?.stop(), upstream?.stop()]);
  rmSync(spools, { recursive: true, force: true });
});

/** Each test takes a layer no other test has touched: a cold blob. */
let taken = 0;
function coldLayer(): { repository: string; layer: Layer } {
  const layers = Object.values(upstream.images)
    .filter((image): image is TestImage => image !== undefined && !image.repository.startsWith("private/"))
    .flatMap((image) => image.manifests.flatMap((m) => m.layers.map((layer) => ({ repository: image.repository, layer }))));
  const next = [...new Map(layers.map((l) => [l.layer.digest, l])).values()][taken++];
  if (!next) throw new Error("out of cold layers");
  return next;
}

const keyOf = (digest: string) => `blobs/sha256/${digest.slice("sha256:".length)}`;
const cdnGets = (digest: string) => upstream.cdnLog.filter((r) => r.method === "GET" && r.path.includes(digest.slice(7))).length;
const get = (cache: InProcessCache, repository: string, digest: string, headers: Record<string, string> = {}) =>
  cache.front.answer(cache.request("blobs", repository, digest, { headers }));

test("a miss streams into the bucket from one upstream GET; hits stream from the bucket, on this node and on another", async () => {
  const { repository, layer } = coldLayer();
  const miss = await get(first, repository, layer.digest);
  expect(miss.headers.get("x-cache")).toBe("MISS");
  expect(await digestOf(miss)).toEqual({ digest: layer.digest, length: layer.size });
  expect(first.storage.commits).toEqual([layer.digest]);
  // The object under the digest holds exactly the blob's bytes.
  expect(sha256(await bucket.file(keyOf(layer.digest)).bytes())).toBe(layer.digest);

  swift.clearRequests();
  const hit = await get(first, repository, layer.digest);
  expect(hit.headers.get("x-cache")).toBe("HIT");
  expect(await digestOf(hit)).toEqual({ digest: layer.digest, length: layer.size });
  const served = (await swift.requests()).filter((r) => r.path === `/${BUCKET}/${keyOf(layer.digest)}`);
  expect(served.map((r) => `${r.method} ${r.status}`)).toEqual(["HEAD 200", "GET 206"]); // one HEAD, one ranged GET

  // Another node never saw it: its index does not know it, the bucket does.
  expect(second.index.getBlob(layer.digest)).toBeUndefined();
  const elsewhere = await get(second, repository, layer.digest);
  expect(elsewhere.headers.get("x-cache")).toBe("HIT");
  expect(await digestOf(elsewhere)).toEqual({ digest: layer.digest, length: layer.size });
  expect(second.index.getBlob(layer.digest)?.size).toBe(layer.size); // adopted
  expect(second.remote.callsFor(layer.digest, "GET")).toEqual([]);
  expect(second.storage.begins).toBe(0);
  expect(cdnGets(layer.digest)).toBe(1); // the first node's fill, for the whole fleet
}, 60_000);

test("a blob adopted from the bucket passes the same access gate as a hit: private content needs the reader's own token", async () => {
  const layer = upstream.images.secret.manifests[0]!.layers[0]!;
  const authorization = `Bearer ${await upstream.token("private/secret", "alice")}`;
  const filled = await get(first, "private/secret", layer.digest, { authorization });
  expect(filled.headers.get("x-cache")).toBe("MISS");
  expect(await digestOf(filled)).toEqual({ digest: layer.digest, length: layer.size });

  // On the other node, asked without a token and under a public repository's name: refused, no bytes, nothing adopted.
  for (const repository of ["private/secret", "acme/app"]) {
    const refused = await get(second, repository, layer.digest);
    expect([401, 404]).toContain(refused.status);
    expect(refused.headers.get("docker-content-digest")).toBeNull();
    expect(second.index.getBlob(layer.digest)).toBeUndefined();
  }
  const allowed = await get(second, "private/secret", layer.digest, { authorization });
  expect(allowed.headers.get("x-cache")).toBe("HIT");
  expect(await digestOf(allowed)).toEqual({ digest: layer.digest, length: layer.size });
  expect(cdnGets(layer.digest)).toBe(1);
}, 60_000);

test("a manifest by tag stored by one node is served by the other after the tag's HEAD, without a GET upstream", async () => {
  const { app } = upstream.images;
  const manifest = (cache: InProcessCache) =>
    cache.front.answer(cache.request("manifests", "acme/app", "v1", { headers: { accept: app.manifests[0]!.mediaType } }));
  const stored = await manifest(first);
  expect(stored.headers.get("x-cache")).toBe("MISS");
  const body = new Uint8Array(await stored.arrayBuffer());
  const digest = stored.headers.get("docker-content-digest")!;
  expect(sha256(body)).toBe(digest);

  const elsewhere = await manifest(second);
  expect(elsewhere.headers.get("x-cache")).toBe("REVALIDATED");
  expect(sha256(new Uint8Array(await elsewhere.arrayBuffer()))).toBe(digest);
  expect(second.remote.callsFor("v1").map((call) => call.method)).toEqual(["HEAD"]);
  expect(second.index.getBlob(digest)?.mediaType).toBe(app.manifests[0]!.mediaType);
}, 60_000);

test("a manifest by digest stored by one node is a hit on the other, its media type read from the manifest itself", async () => {
  const [platform, other] = upstream.images.alpine.manifests as [ManifestInfo, ManifestInfo];
  const manifest = (cache: InProcessCache, digest: string, accept: string) =>
    cache.front.answer(cache.request("manifests", "library/alpine", digest, { headers: { accept } }));
  for (const { digest, mediaType } of [platform, other]) expect((await manifest(first, digest, mediaType)).headers.get("x-cache")).toBe("MISS");

  const hit = await manifest(second, platform.digest, platform.mediaType);
  expect(hit.headers.get("x-cache")).toBe("HIT");
  expect(hit.headers.get("content-type")).toBe(platform.mediaType);
  expect(sha256(new Uint8Array(await hit.arrayBuffer()))).toBe(platform.digest);
  expect(second.remote.callsFor(platform.digest, "GET")).toEqual([]);
  expect(second.index.getBlob(platform.digest)?.mediaType).toBe(platform.mediaType);

  // A client that does not take the stored manifest's type gets what the upstream answers it instead.
  const refused = await manifest(second, other.digest, "application/vnd.oci.image.index.v1+json");
  expect(refused.headers.get("x-cache")).not.toBe("HIT");
  await refused.arrayBuffer();
  expect(second.remote.callsFor(other.digest, "GET")).toHaveLength(1);
}, 60_000);

test("Swift's proxy down: a cold pull and a hit both get their bytes from the upstream, nothing is committed, and the store says failing", async () => {
  const cold = coldLayer();
  const cached = coldLayer();
  expect(await digestOf(await get(first, cached.repository, cached.layer.digest))).toEqual({ digest: cached.layer.digest, length: cached.layer.size });
  const [firstStore] = watched;
  expect(firstStore!.status).toMatchObject({ storage: "s3", state: "up" });
  const failuresBefore = firstStore!.status.failures;
  const commitsBefore = first.storage.commits.length;

  await swift.killProxy();
  try {
    const miss = await get(first, cold.repository, cold.layer.digest);
    expect(await digestOf(miss)).toEqual({ digest: cold.layer.digest, length: cold.layer.size });
    expect(cdnGets(cold.layer.digest)).toBe(1);

    const hit = await get(first, cached.repository, cached.layer.digest); // indexed here, unreadable now
    expect(await digestOf(hit)).toEqual({ digest: cached.layer.digest, length: cached.layer.size });
    expect(cdnGets(cached.layer.digest)).toBe(2); // the fill, then this pull from the upstream

    expect(first.storage.commits.length).toBe(commitsBefore);
    expect(firstStore!.status.state).toBe("failing");
    expect(firstStore!.status.reason).toContain(`s3://${BUCKET}/`);
    expect(firstStore!.status.reason).not.toContain(swift.secretAccessKey);
    expect(firstStore!.status.failures).toBeGreaterThan(failuresBefore);
  } finally {
    await swift.restartProxy();
  }
  expect(await bucket.file(keyOf(cold.layer.digest)).exists()).toBe(false);
  // Back: the next pull finds the store working again, and fills it.
  const again = await get(first, cold.repository, cold.layer.digest);
  expect(await digestOf(again)).toEqual({ digest: cold.layer.digest, length: cold.layer.size });
  expect(firstStore!.status.state).toBe("up");
  expect(sha256(await bucket.file(keyOf(cold.layer.digest)).bytes())).toBe(cold.layer.digest);
}, 120_000);

test("the bucket gone at the very commit: the fill's readers still get every verified byte, and no object appears", async () => {
  const bytes = crypto.getRandomValues(new Uint8Array(300_000));
  const digest = sha256(bytes);
  const [store] = watched;
  const temp = await store!.begin(digest);
  // Every byte went up to the store while it worked; it dies just before the upload completes.
  const dying: TempBlob = { ...temp, commit: async (committed) => (await swift.killProxy(), temp.commit(committed)) };
  let settled!: (outcome: { committed: boolean; error?: Error }) => void;
  const outcome = new Promise<{ committed: boolean; error?: Error }>((resolve) => (settled = resolve));
  const fill = new Fill({ digest, size: bytes.length, body: new Response(bytes).body!, temp: dying, storage: store!, continueWithoutReaders: true, onSettled: settled });
  const readers = [fill.read(0, bytes.length - 1), fill.read(1000, 1999)];
  void fill.start();
  try {
    // The readers start only once the commit has failed: nothing of the blob had reached them yet.
    const { committed, error } = await outcome;
    const [whole, range] = await Promise.all(readers.map((stream) => new Response(stream).arrayBuffer()));
    expect(sha256(new Uint8Array(whole!))).toBe(digest);
    expect(new Uint8Array(range!)).toEqual(bytes.subarray(1000, 2000));
    expect(committed).toBe(false);
    expect(error?.message).toContain("commit failed");
    expect(fill.state).toBe("served");
    expect(store!.status.state).toBe("failing");
  } finally {
    await swift.restartProxy();
  }
  expect(await bucket.file(keyOf(digest)).exists()).toBe(false);
}, 120_000);

test("a bucket that hangs: a cold pull and a hit get their bytes from the upstream within the store's timeouts, nothing is committed", async () => {
  const trouble = await startTrouble(swift.endpoint); // raw TCP in front of Swift: passes through, or reads and never answers
  const { accessKeyId, secretAccessKey, region } = swift;
  const store = new WatchedStorage(
    await S3Storage.open({ endpoint: trouble.url, accessKeyId, secretAccessKey, region, bucket: BUCKET, spoolDir: join(spools, "hung"), timeoutMs: { request: 300, stall: 1000 } }),
    "s3",
  );
  const hung = await inProcessCache(upstream, { storage: async () => store });
  const cold = coldLayer();
  const cached = coldLayer();
  try {
    expect(await digestOf(await get(hung, cached.repository, cached.layer.digest))).toEqual({ digest: cached.layer.digest, length: cached.layer.size });
    await trouble.set({ kind: "hang" });

    const miss = await get(hung, cold.repository, cold.layer.digest);
    expect(await digestOf(miss)).toEqual({ digest: cold.layer.digest, length: cold.layer.size });
    const hit = await get(hung, cached.repository, cached.layer.digest);
    expect(await digestOf(hit)).toEqual({ digest: cached.layer.digest, length: cached.layer.size });
    expect(cdnGets(cached.layer.digest)).toBe(2);
    expect(hung.storage.commits).toEqual([cached.layer.digest]);
    expect(store.status.state).toBe("failing");
    expect(store.status.reason).toContain("within");
    expect(trouble.faulted.length).toBeGreaterThan(0); // the bucket really was asked, and hung
  } finally {
    hung.close();
    await trouble.stop();
  }
  expect(await bucket.file(keyOf(cold.layer.digest)).exists()).toBe(false);
}, 120_000);
