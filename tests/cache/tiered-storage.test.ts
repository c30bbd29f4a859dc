// TieredStorage in front of S3Storage on a real Swift (tests/support/swift.ts): a blob read twice
// costs the bucket nothing the second time and comes back as a local file with its exact bytes;
// a local copy is only ever one whose size and digest were verified, a cut one is not served, and
// the tier keeps to its size. Bucket requests are counted from Swift's own log. One Swift per file.
// Last, the tier as `[cache.s3] hot_tier_size` turns it on, through openCache and the cache front.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CredentialMemory } from "../../src/auth/credential-memory";
import { openCache } from "../../src/cache/open-cache";
import { S3Storage } from "../../src/cache/s3-storage";
import { TieredStorage } from "../../src/cache/tiered-storage";
import type { StoredBlob } from "../../src/cache/blob-storage";
import { loadConfig } from "../../src/config/load";
import { createLogger } from "../../src/observability/logger";
import { fileOf } from "../../src/util/file-response";
import { countingPassThrough, digestOf, readsOf } from "../support/cache/in-process";
import { sha256 } from "../support/layers";
import { startSwift, type Swift } from "../support/swift";
import { startUpstream, type Upstream } from "../support/upstream";

const MiB = 1024 * 1024;
let swift: Swift;
let bucket: S3Storage;
let dirs: string[] = [];

beforeAll(async () => {
  swift = await startSwift();
  await swift.createBucket("docxy");
  const { endpoint, accessKeyId, secretAccessKey, region } = swift;
  bucket = await S3Storage.open({ endpoint, accessKeyId, secretAccessKey, region, bucket: "docxy", prefix: "tier", spoolDir: tempDir() });
}, 120_000);
afterAll(async () => {
  await swift?.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  dirs = [];
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "docxy-hot-"));
  dirs.push(dir);
  return dir;
}

let seed = 0;
/** Deterministic bytes, different for every call. */
function blob(length: number): { bytes: Uint8Array; digest: string } {
  const bytes = new Uint8Array(length);
  let x = ++seed * 2654435761 + 1;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return { bytes, digest: sha256(bytes) };
}

/** Commits `bytes` under `digest` in the bucket directly, as another node would. */
async function inBucket(digest: string, bytes: Uint8Array): Promise<void> {
  const temp = await bucket.begin(digest);
  await temp.write(bytes);
  await temp.commit(digest);
}

async function readAll(stored: StoredBlob): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stored.stream(0, stored.size - 1)).arrayBuffer());
}

/** Forgets the requests so far, once their log lines are in: a line arriving late would count as new. */
async function clearRequests(): Promise<void> {
  await swift.requests();
  swift.clearRequests();
}

/** Bucket requests for `digest`'s object since the last clearRequests. */
async function bucketRequests(digest: string): Promise<string[]> {
  const hex = digest.slice("sha256:".length);
  return (await swift.requests()).filter((r) => r.path.includes(hex)).map((r) => r.method);
}

const hotFile = (dir: string, digest: string) => join(dir, "blobs", "sha256", digest.slice("sha256:".length));

describe("TieredStorage", () => {
  test("a blob read from the bucket is copied in the background; the next hit is a local file and no bucket request", async () => {
    const dir = tempDir();
    const tier = await TieredStorage.open({ bucket, dir, maxBytes: 64 * MiB, inUse: () => false });
    const { bytes, digest } = blob(6 * MiB + 7);
    await inBucket(digest, bytes);

    const first = await tier.open(digest);
    expect(first?.path).toBeUndefined(); // not local yet: streamed from the bucket
    expect(sha256(await readAll(first!))).toBe(digest);
    await tier.copied();

    await clearRequests();
    const second = await tier.open(digest);
    expect(second?.path).toBe(hotFile(dir, digest));
    expect(sha256(await Bun.file(second!.path!).bytes())).toBe(digest);
    expect(Buffer.from(await new Response(second!.stream(MiB, 2 * MiB)).arrayBuffer()).equals(bytes.subarray(MiB, 2 * MiB + 1))).toBe(true);
    expect(await bucketRequests(digest)).toEqual([]);
  }, 60_000);

  test("without the tier every hit costs the bucket a HEAD and a GET", async () => {
    const { bytes, digest } = blob(MiB);
    await inBucket(digest, bytes);
    await clearRequests();
    for (let hit = 0; hit < 2; hit++) {
      const stored = await bucket.open(digest);
      expect(stored?.path).toBeUndefined();
      expect(sha256(await readAll(stored!))).toBe(digest);
    }
    expect(await bucketRequests(digest)).toEqual(["HEAD", "GET", "HEAD", "GET"]);
  }, 60_000);

  test("a HEAD-only hit copies nothing", async () => {
    const dir = tempDir();
    const tier = await TieredStorage.open({ bucket, dir, maxBytes: 64 * MiB, inUse: () => false });
    const { bytes, digest } = blob(MiB);
    await inBucket(digest, bytes);
    expect((await tier.open(digest))?.size).toBe(bytes.length);
    await tier.copied();
    expect(existsSync(hotFile(dir, digest))).toBe(false);
  }, 60_000);

  test("a fill goes to the bucket and stays local: its first hit is already a local file", async () => {
    const dir = tempDir();
    const tier = await TieredStorage.open({ bucket, dir, maxBytes: 64 * MiB, inUse: () => false });
    const { bytes, digest } = blob(11 * MiB + 5); // three parts: a real multipart upload
    const temp = await tier.begin(digest);
    for (let offset = 0; offset < bytes.length; offset += 256 * 1024) void temp.write(bytes.slice(offset, offset + 256 * 1024)); // unawaited: still in order
    await temp.commit(digest);
    await tier.copied();

    await clearRequests();
    const hit = await tier.open(digest);
    expect(hit?.path).toBe(hotFile(dir, digest));
    expect(sha256(await Bun.file(hit!.path!).bytes())).toBe(digest);
    expect(await bucketRequests(digest)).toEqual([]);
    expect(sha256(await readAll((await bucket.open(digest))!))).toBe(digest); // and the bucket, the truth, has it
    expect(readdirSync(join(dir, "tmp"))).toEqual([]);
  }, 60_000);

  test("a fill larger than the tier goes to the bucket only", async () => {
    const dir = tempDir();
    const tier = await TieredStorage.open({ bucket, dir, maxBytes: MiB, inUse: () => false });
    const { bytes, digest } = blob(2 * MiB);
    const temp = await tier.begin(digest);
    for (let offset = 0; offset < bytes.length; offset += 256 * 1024) await temp.write(bytes.slice(offset, offset + 256 * 1024));
    await temp.commit(digest);
    await tier.copied();
    expect(existsSync(hotFile(dir, digest))).toBe(false);
    expect(readdirSync(join(dir, "tmp"))).toEqual([]);
    expect(sha256(await readAll((await tier.open(digest))!))).toBe(digest);
  }, 60_000);

  test("a blob deleted while it is being copied does not come back locally", async () => {
    const dir = tempDir();
    const tier = await TieredStorage.open({ bucket, dir, maxBytes: 64 * MiB, inUse: () => false });
    const { bytes, digest } = blob(MiB);
    const temp = await tier.begin(digest);
    await temp.write(bytes);
    await temp.commit(digest); // the local twin is being kept in the background
    await tier.delete(digest);
    await tier.copied();
    expect(existsSync(hotFile(dir, digest))).toBe(false);
    expect(await tier.open(digest)).toBeUndefined();
  }, 60_000);

  test("an aborted fill leaves nothing, locally or in the bucket", async () => {
    const dir = tempDir();
    const tier = await TieredStorage.open({ bucket, dir, maxBytes: 64 * MiB, inUse: () => false });
    const { bytes, digest } = blob(2 * MiB);
    const temp = await tier.begin(digest);
    await temp.write(bytes.subarray(0, MiB));
    await temp.abort();
    await tier.copied();
    expect(await tier.open(digest)).toBeUndefined();
    expect(existsSync(hotFile(dir, digest))).toBe(false);
    expect(readdirSync(join(dir, "tmp"))).toEqual([]);
  }, 60_000);

  test("a local copy cut behind the tier's back is never served: the bucket answers and a whole copy replaces it", async () => {
    const dir = tempDir();
    const tier = await TieredStorage.open({ bucket, dir, maxBytes: 64 * MiB, inUse: () => false });
    const { bytes, digest } = blob(3 * MiB);
    await inBucket(digest, bytes);
    await readAll((await tier.open(digest))!);
    await tier.copied();
    truncateSync(hotFile(dir, digest), MiB);

    await clearRequests();
    const stored = await tier.open(digest);
    expect(stored?.path).toBeUndefined();
    expect(stored?.size).toBe(bytes.length);
    expect(sha256(await readAll(stored!))).toBe(digest);
    await tier.copied();
    expect(await bucketRequests(digest)).toEqual(["HEAD", "GET", "GET"]); // the client's read, then the copy's
    const again = await tier.open(digest);
    expect(again?.path).toBe(hotFile(dir, digest));
    expect(sha256(await Bun.file(again!.path!).bytes())).toBe(digest);
  }, 60_000);

  test("bytes that do not hash to their digest never become a local copy", async () => {
    const dir = tempDir();
    const tier = await TieredStorage.open({ bucket, dir, maxBytes: 64 * MiB, inUse: () => false });
    const { digest } = blob(MiB);
    await inBucket(digest, blob(MiB).bytes); // another node's bug, or the object overwritten by hand
    await readAll((await tier.open(digest))!);
    await tier.copied();
    expect(existsSync(hotFile(dir, digest))).toBe(false);
    expect(readdirSync(join(dir, "tmp"))).toEqual([]);
    expect((await tier.open(digest))?.path).toBeUndefined();
  }, 60_000);

  test("the tier keeps to its size, dropping the least recently used copy no one reads, and never touches the bucket", async () => {
    const dir = tempDir();
    const reading = new Set<string>();
    const tier = await TieredStorage.open({ bucket, dir, maxBytes: 5 * MiB, inUse: (digest) => reading.has(digest) });
    const [a, b, c, d] = [blob(2 * MiB), blob(2 * MiB), blob(2 * MiB), blob(2 * MiB)];
    const huge = blob(6 * MiB);
    for (const { digest, bytes } of [a, b, c, d, huge]) await inBucket(digest, bytes);
    const read = async (digest: string) => {
      const stored = (await tier.open(digest))!;
      expect(sha256(await readAll(stored))).toBe(digest);
      await tier.copied();
      return stored;
    };
    const local = () => readdirSync(join(dir, "blobs", "sha256")).map((hex) => `sha256:${hex}`).sort();

    await read(a.digest);
    await read(b.digest);
    expect((await read(a.digest)).path).toBeDefined(); // a is now the most recently used
    await read(c.digest); // 6 MiB > 5: b goes
    expect(local()).toEqual([a.digest, c.digest].sort());

    reading.add(a.digest); // a client streams a: c, though more recent, goes instead
    await read(d.digest);
    expect(local()).toEqual([a.digest, d.digest].sort());

    await read(huge.digest); // larger than the whole tier: never copied, nothing dropped for it
    expect(local()).toEqual([a.digest, d.digest].sort());
    for (const { digest } of [a, b, c, d, huge]) expect((await bucket.open(digest))?.size).toBeGreaterThan(0);
  }, 60_000);

  test("copies survive a restart, within a lowered bound", async () => {
    const dir = tempDir();
    const first = await TieredStorage.open({ bucket, dir, maxBytes: 64 * MiB, inUse: () => false });
    const [a, b] = [blob(2 * MiB), blob(2 * MiB)];
    for (const { digest, bytes } of [a, b]) {
      await inBucket(digest, bytes);
      await readAll((await first.open(digest))!);
      await first.copied();
    }
    const again = await TieredStorage.open({ bucket, dir, maxBytes: 3 * MiB, inUse: () => false });
    expect(readdirSync(join(dir, "blobs", "sha256"))).toHaveLength(1);
    await clearRequests();
    const kept = [a, b].find(({ digest }) => existsSync(hotFile(dir, digest)))!;
    expect((await again.open(kept.digest))?.path).toBe(hotFile(dir, kept.digest));
    expect(await bucketRequests(kept.digest)).toEqual([]);
  }, 60_000);

  test("delete removes the blob from the bucket and the tier; list and shared are the bucket's", async () => {
    const dir = tempDir();
    const tier = await TieredStorage.open({ bucket, dir, maxBytes: 64 * MiB, inUse: () => false });
    expect(tier.shared).toBe(true);
    const { bytes, digest } = blob(MiB);
    await inBucket(digest, bytes);
    await readAll((await tier.open(digest))!);
    await tier.copied();
    const listed = async () => {
      const found: { digest: string; size: number }[] = [];
      for await (const entry of tier.list()) if (entry.digest === digest) found.push(entry);
      return found;
    };
    expect(await listed()).toEqual([{ digest, size: bytes.length }]);
    await tier.delete(digest);
    expect(existsSync(hotFile(dir, digest))).toBe(false);
    expect(await bucket.open(digest)).toBeUndefined();
    expect(await tier.open(digest)).toBeUndefined();
    expect(await listed()).toEqual([]);
  }, 60_000);
});

describe("[cache.s3] hot_tier_size through openCache", () => {
  let upstream: Upstream;
  beforeAll(async () => {
    upstream = await startUpstream({ onlyThroughProxy: true });
  }, 120_000);
  afterAll(async () => {
    await upstream?.stop();
  });

  async function open(dir: string, hotTierSize: string) {
    const none = join(dir, "none.toml");
    writeFileSync(none, "");
    const { endpoint, accessKeyId, secretAccessKey } = swift;
    const overrides = {
      "cache.dir": dir,
      "cache.storage": "s3",
      "cache.s3.endpoint": endpoint,
      "cache.s3.bucket": "docxy",
      "cache.s3.prefix": `node-${hotTierSize}`,
      "cache.s3.access_key_id": accessKeyId,
      "cache.s3.secret_access_key": secretAccessKey,
      "cache.s3.hot_tier_size": hotTierSize,
    };
    const { config } = await loadConfig({ path: none, env: {}, overrides });
    const log = createLogger("error", () => {});
    const opened = await openCache(config.cache, { remote: countingPassThrough(), log, credentials: new CredentialMemory() });
    const get = (digest: string) => opened.reads.answer(readsOf(upstream).request("blobs", "acme/app", digest));
    return { ...opened, get };
  }

  test("on: a filled blob's hits are local files the edge sends itself, with no bucket request; off (the default): every hit reads the bucket", async () => {
    const [onLayer, offLayer] = upstream.images.app.manifests[0]!.layers;
    const on = await open(tempDir(), "64MiB");
    const dir = on.cache!.dir;
    const miss = await on.get(onLayer!.digest);
    expect(miss.headers.get("x-cache")).toBe("MISS");
    expect(await digestOf(miss)).toEqual({ digest: onLayer!.digest, length: onLayer!.size });
    // The local twin of the fill is kept in the background: its file appears once fsynced and renamed.
    while (!existsSync(hotFile(join(dir, "hot"), onLayer!.digest))) await Bun.sleep(10);
    await clearRequests();
    for (let hit = 0; hit < 2; hit++) {
      const response = await on.get(onLayer!.digest);
      expect(response.headers.get("x-cache")).toBe("HIT");
      expect(fileOf(response)?.path).toBe(hotFile(join(dir, "hot"), onLayer!.digest));
      expect(await digestOf(response)).toEqual({ digest: onLayer!.digest, length: onLayer!.size });
    }
    expect(await bucketRequests(onLayer!.digest)).toEqual([]);
    on.cache!.index.close();

    const off = await open(tempDir(), "0");
    expect(await digestOf(await off.get(offLayer!.digest))).toEqual({ digest: offLayer!.digest, length: offLayer!.size });
    expect(existsSync(join(off.cache!.dir, "hot"))).toBe(false);
    await clearRequests();
    for (let hit = 0; hit < 2; hit++) {
      const response = await off.get(offLayer!.digest);
      expect(response.headers.get("x-cache")).toBe("HIT");
      expect(fileOf(response)).toBeUndefined();
      expect(await digestOf(response)).toEqual({ digest: offLayer!.digest, length: offLayer!.size });
    }
    expect(await bucketRequests(offLayer!.digest)).toEqual(["HEAD", "GET", "HEAD", "GET"]);
    off.cache!.index.close();
  }, 120_000);
});
