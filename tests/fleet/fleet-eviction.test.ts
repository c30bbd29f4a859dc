/**
 * Eviction of a fleet's shared bucket (fleet/fleet-eviction.ts over the
 * ledger of fleet/shared-lru.ts), in process, against the real test
 * registry, a real Swift and a real redis-server: two nodes, each a blob
 * cache with its own index and spool, on one bucket and one Redis. What is
 * asserted is what the bucket holds (objects by key), what the ledger
 * counts, and the bytes clients receive. Each test gets its own bucket and
 * an empty Redis, so earlier tests' content never counts. The evictors are
 * run by the tests (the caches' own commit-triggered runs are off), so a
 * run's result is the test's to check.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { RedisClient } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CredentialMemory } from "../../src/auth/credential-memory";
import { AccessGate } from "../../src/cache/access-gate";
import { BlobCache } from "../../src/cache/blob-cache";
import type { Eviction } from "../../src/cache/eviction";
import { FillLimits } from "../../src/cache/fill-limits";
import { LocalCoordination } from "../../src/cache/local-coordination";
import { S3Storage } from "../../src/cache/s3-storage";
import { SqliteIndex } from "../../src/cache/sqlite-index";
import { FleetEvictor, type FleetEvictorOptions } from "../../src/fleet/fleet-eviction";
import { FleetRedis } from "../../src/fleet/redis";
import { recordingInto, SharedLru } from "../../src/fleet/shared-lru";
import { createLogger } from "../../src/observability/logger";
import { Metrics } from "../../src/observability/metrics";
import { countingPassThrough, digestOf, readsOf, type CountingRemote, type InProcessCache } from "../support/cache/in-process";
import { startRedis, type Redis } from "../support/redis";
import { startSwift, type Swift } from "../support/swift";
import { startUpstream, type Layer, type TestImage, type Upstream } from "../support/upstream";

let upstream: Upstream;
let swift: Swift;
let redis: Redis;
let probe: RedisClient;
const root = mkdtempSync(join(tmpdir(), "docxy-fleet-eviction-"));
const cleanups: (() => void)[] = [];

beforeAll(async () => {
  [upstream, swift, redis] = await Promise.all([startUpstream({ onlyThroughProxy: true }), startSwift(), startRedis()]);
  probe = new RedisClient(redis.url);
}, 120_000);
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});
afterAll(async () => {
  probe?.close();
  await Promise.all([swift?.stop(), upstream?.stop(), redis?.stop()]);
  rmSync(root, { recursive: true, force: true });
});

const OFF: Eviction = { run: async () => ({ removed: 0, freedBytes: 0 }), runIfSkipped: () => undefined };
const silent = createLogger("error", () => undefined);

interface Node {
  get(repository: string, digest: string): Promise<Response>;
  blobs: BlobCache;
  index: SqliteIndex;
  lru: SharedLru;
  remote: CountingRemote;
  /** A fresh evictor of the shared bucket on this node, with these limits. */
  evictor(limits: Pick<FleetEvictorOptions, "maxBytes" | "maxAgeMs" | "retryMs">): FleetEvictor;
}

let buckets = 0;
/** A new bucket and an empty Redis; `node()` makes nodes on them. */
async function fleet(): Promise<{ bucket: Bun.S3Client; node(name: string): Promise<Node> }> {
  const name = `evict-${++buckets}`;
  await swift.createBucket(name);
  await probe.send("FLUSHALL", []);
  const { endpoint, accessKeyId, secretAccessKey, region } = swift;
  const bucket = new Bun.S3Client({ endpoint, accessKeyId, secretAccessKey, region, bucket: name });
  return {
    bucket,
    async node(nodeName) {
      const dir = join(root, `${name}-${nodeName}`);
      const storage = await S3Storage.open({ endpoint, accessKeyId, secretAccessKey, region, bucket: name, spoolDir: join(dir, "spool") });
      const fleetRedis = new FleetRedis({ url: redis.url, log: { warn: () => undefined, info: () => undefined }, retryMs: 50 });
      const lru = new SharedLru(fleetRedis);
      const index = recordingInto(SqliteIndex.open(join(dir, "index.sqlite")), lru);
      const remote = countingPassThrough();
      const coordination = new LocalCoordination();
      const gate = new AccessGate(index, remote, new CredentialMemory());
      const limits = new FillLimits({ maxFills: 64, maxFillsPerClient: 64, maxFillBytes: 2 ** 40 });
      const blobs = new BlobCache({ storage, index, remote, coordination, gate, evictor: OFF, limits, log: silent, continueWithoutReaders: true, readers: lru });
      const { request } = readsOf(upstream) as Pick<InProcessCache, "request">;
      cleanups.push(() => {
        lru.close();
        fleetRedis.close();
        index.close();
      });
      return {
        get: async (repository, digest) => {
          const answer = await blobs.serve(request("blobs", repository, digest));
          if (answer === "pass-through") throw new Error(`${digest} passed through`);
          return answer;
        },
        blobs,
        index,
        lru,
        remote,
        evictor: (limits) => new FleetEvictor({ redis: fleetRedis, lru, storage, index, inUse: (digest) => blobs.inUse(digest), ...limits }),
      };
    },
  };
}

/** Public layers, each once; tests take them in order, so each blob is cold for its bucket. */
function layers(count: number): { repository: string; layer: Layer }[] {
  const all = Object.values(upstream.images)
    .filter((image): image is TestImage => image !== undefined && !image.repository.startsWith("private/"))
    .flatMap((image) => image.manifests.flatMap((m) => m.layers.map((layer) => ({ repository: image.repository, layer }))));
  const unique = [...new Map(all.map((l) => [l.layer.digest, l])).values()].filter((l) => l.layer.size > 0);
  if (unique.length < count) throw new Error(`only ${unique.length} layers`);
  return unique.slice(0, count);
}

const keyOf = (digest: string) => `blobs/sha256/${digest.slice("sha256:".length)}`;
const inBucket = (bucket: Bun.S3Client, digest: string) => bucket.file(keyOf(digest)).exists();
/** Digest and length of a body whose first chunk was read already, read to its end. */
async function rest(first: Uint8Array, reader: { read(): Promise<{ done: boolean; value?: Uint8Array }> }): Promise<{ digest: string; length: number }> {
  const hasher = new Bun.CryptoHasher("sha256").update(first);
  let length = first.length;
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
    hasher.update(chunk.value!);
    length += chunk.value!.length;
  }
  return { digest: `sha256:${hasher.digest("hex")}`, length };
}

const ledgerBytes = async () => Number((await probe.send("GET", ["docxy:bytes"])) ?? 0);
const ledger = async () => ((await probe.send("ZRANGE", ["docxy:lru", "0", "-1"])) as string[]).sort();

test("a blob stored by one node and adopted by another is counted once; a hit by either moves it in the shared LRU", async () => {
  const { node } = await fleet();
  const [a, b] = [await node("a"), await node("b")];
  const [first, second] = layers(2);
  for (const { repository, layer } of [first!, second!]) {
    const miss = await a.get(repository, layer.digest);
    expect(miss.headers.get("x-cache")).toBe("MISS");
    expect(await digestOf(miss)).toEqual({ digest: layer.digest, length: layer.size });
  }
  await Bun.sleep(2); // B's adoption gets a later millisecond than A's commits, whatever the machine's speed
  const adopted = await b.get(first!.repository, first!.layer.digest);
  expect(adopted.headers.get("x-cache")).toBe("HIT");
  await digestOf(adopted);
  await Promise.all([b.lru.flush(), a.lru.flush()]); // in either order: each use keeps its own time
  expect(await ledgerBytes()).toBe(first!.layer.size + second!.layer.size);
  // B's hit came after A's commits: the first layer is now the most recently used.
  expect(await probe.send("ZRANGE", ["docxy:lru", "0", "-1"])).toEqual([second!.layer.digest, first!.layer.digest]);
}, 60_000);

test("a blob the evicting node pinned ([cache] pin) stays in the bucket and the ledger; the rest goes", async () => {
  const { bucket, node } = await fleet();
  const a = await node("a");
  const [pinned, other] = layers(2) as [{ repository: string; layer: Layer }, { repository: string; layer: Layer }];
  for (const { repository, layer } of [pinned, other]) await digestOf(await a.get(repository, layer.digest));
  a.index.pin("alpine:3.20", [pinned.layer.digest], true);
  expect(await a.evictor({ maxBytes: 0 }).run()).toEqual({ removed: 1, freedBytes: other.layer.size });
  expect([await inBucket(bucket, pinned.layer.digest), await inBucket(bucket, other.layer.digest)]).toEqual([true, false]);
  expect(await ledger()).toEqual([pinned.layer.digest]);
  expect(await ledgerBytes()).toBe(pinned.layer.size);
}, 60_000);

test("eviction on one node never deletes a blob another node's client is reading; the next run does, for every node", async () => {
  const { bucket, node } = await fleet();
  const [a, b] = [await node("a"), await node("b")];
  const [{ repository, layer }] = layers(1) as [{ repository: string; layer: Layer }];
  await digestOf(await a.get(repository, layer.digest)); // A fills it into the bucket

  // B's client starts reading and stops after its first chunk: the read is in progress.
  const reading = await b.get(repository, layer.digest);
  expect(reading.headers.get("x-cache")).toBe("HIT");
  const reader = reading.body!.getReader();
  const head = await reader.read();
  expect(head.done).toBe(false);

  const evictor = a.evictor({ maxBytes: 0 });
  expect(await evictor.run()).toEqual({ removed: 0, freedBytes: 0 });
  expect(await inBucket(bucket, layer.digest)).toBe(true);
  expect(await ledger()).toEqual([layer.digest]);

  // B's client gets every byte, unharmed.
  expect(await rest(head.value!, reader)).toEqual({ digest: layer.digest, length: layer.size });

  // The read ended (B unregisters it without waiting; the test waits until Redis shows it).
  while (await probe.send("EXISTS", [`docxy:reading:${layer.digest}`])) await Bun.sleep(5);
  // The next run on A deletes it, from the bucket, the ledger and A's index.
  expect(await evictor.run()).toEqual({ removed: 1, freedBytes: layer.size });
  expect(await inBucket(bucket, layer.digest)).toBe(false);
  expect(await ledger()).toEqual([]);
  expect(await ledgerBytes()).toBe(0);
  expect(a.index.getBlob(layer.digest)).toBeUndefined();

  // B still indexes it; its next GET finds the object gone and gets the blob from the upstream.
  expect(b.index.getBlob(layer.digest)).toBeDefined();
  const again = await b.get(repository, layer.digest);
  expect(again.headers.get("x-cache")).toBe("MISS");
  expect(await digestOf(again)).toEqual({ digest: layer.digest, length: layer.size });
  expect(b.remote.callsFor(layer.digest, "GET")).toHaveLength(1);
  expect(await inBucket(bucket, layer.digest)).toBe(true); // stored again by B's fill
}, 60_000);

test("a blob skipped for a reader on another node is evicted once that read ends, with no new commit to trigger a run", async () => {
  const { bucket, node } = await fleet();
  const [a, b] = [await node("a"), await node("b")];
  const [{ repository, layer }] = layers(1) as [{ repository: string; layer: Layer }];
  await digestOf(await a.get(repository, layer.digest));
  const reading = await b.get(repository, layer.digest);
  const reader = reading.body!.getReader();
  await reader.read();
  expect(await a.evictor({ maxBytes: 0, retryMs: 50 }).run()).toEqual({ removed: 0, freedBytes: 0 });
  expect(await inBucket(bucket, layer.digest)).toBe(true);
  while (!(await reader.read()).done);
  // A's evictor looks again by itself (every 50 ms here) and finds the read over.
  while (await inBucket(bucket, layer.digest)) await Bun.sleep(20);
  // The run still takes it out of A's index after the DELETE: closing that index before would fail the run.
  while (a.index.getBlob(layer.digest)) await Bun.sleep(5);
  expect(await ledger()).toEqual([]);
}, 60_000);

test("a reader registered while the evictor deletes its blob is told it is gone and served from the upstream", async () => {
  const { node } = await fleet();
  const [a, b] = [await node("a"), await node("b")];
  const [{ repository, layer }] = layers(1) as [{ repository: string; layer: Layer }];
  await digestOf(await a.get(repository, layer.digest));
  await a.lru.flush();
  // What A's evictor does between taking the blob out of the ledger and its DELETE.
  const [entry] = (await a.lru.oldest(0, 1))!;
  expect(await a.lru.claim(entry!)).toEqual({ size: layer.size });
  const answer = await b.get(repository, layer.digest);
  expect(answer.headers.get("x-cache")).toBe("MISS");
  expect(await digestOf(answer)).toEqual({ digest: layer.digest, length: layer.size });
}, 60_000);

test("only one node evicts at a time: together they delete each victim once, and a held lock stops the other", async () => {
  const { bucket, node } = await fleet();
  const [a, b] = [await node("a"), await node("b")];
  const blobs = layers(4);
  for (const { repository, layer } of blobs) {
    await digestOf(await a.get(repository, layer.digest));
    await Bun.sleep(2); // each commit in its own millisecond: the order of the LRU is the order of the commits
  }
  const sizes = blobs.map(({ layer }) => layer.size);
  const keep = sizes[3]!; // the newest fits; the three oldest must go

  // Another holder of the lock: neither node deletes anything.
  await probe.send("SET", ["docxy:lock:eviction", "someone", "PX", "30000"]);
  expect(await b.evictor({ maxBytes: keep }).run()).toEqual({ removed: 0, freedBytes: 0 });
  for (const { layer } of blobs) expect(await inBucket(bucket, layer.digest)).toBe(true);
  await probe.send("DEL", ["docxy:lock:eviction"]);

  const results = await Promise.all([a.evictor({ maxBytes: keep }).run(), b.evictor({ maxBytes: keep }).run()]);
  expect(results.reduce((sum, r) => sum + r.removed, 0)).toBe(3);
  expect(results.reduce((sum, r) => sum + r.freedBytes, 0)).toBe(sizes[0]! + sizes[1]! + sizes[2]!);
  expect(await Promise.all(blobs.map(({ layer }) => inBucket(bucket, layer.digest)))).toEqual([false, false, false, true]);
  expect(await ledgerBytes()).toBe(keep);
}, 60_000);

test("with Redis down nothing is deleted and no run hangs; a restarted, empty Redis is refilled from the bucket before evicting", async () => {
  const { bucket, node } = await fleet();
  const a = await node("a");
  const blobs = layers(2);
  for (const { repository, layer } of blobs) await digestOf(await a.get(repository, layer.digest));
  await a.lru.flush();

  await redis.kill();
  try {
    const evictor = a.evictor({ maxBytes: 0 });
    expect(await evictor.run()).toEqual({ removed: 0, freedBytes: 0 });
    // Hits still work, unregistered: the evictor cannot run either.
    const hit = await a.get(blobs[0]!.repository, blobs[0]!.layer.digest);
    expect(hit.headers.get("x-cache")).toBe("HIT");
    expect(await digestOf(hit)).toEqual({ digest: blobs[0]!.layer.digest, length: blobs[0]!.layer.size });
    for (const { layer } of blobs) expect(await inBucket(bucket, layer.digest)).toBe(true);
  } finally {
    await redis.restart();
  }
  probe.close();
  probe = new RedisClient(redis.url);
  await Bun.sleep(100); // past the client's retry back-off (retryMs 50)

  // Redis lost everything: the run lists the bucket into the ledger, then evicts from it.
  const result = await a.evictor({ maxBytes: 0 }).run();
  expect(result).toEqual({ removed: 2, freedBytes: blobs[0]!.layer.size + blobs[1]!.layer.size });
  for (const { layer } of blobs) expect(await inBucket(bucket, layer.digest)).toBe(false);
}, 60_000);

test("an admin's purge of a blob another node reads deletes nothing while the read runs (its bytes complete) and says in-use; once the read ends it removes the object, the ledger entry and its bytes", async () => {
  const { bucket, node } = await fleet();
  const [a, b] = [await node("a"), await node("b")];
  const [{ repository, layer }] = layers(1) as [{ repository: string; layer: Layer }];
  await digestOf(await a.get(repository, layer.digest)); // A fills it into the bucket
  await a.lru.flush();
  expect(await ledgerBytes()).toBe(layer.size);

  const reading = await b.get(repository, layer.digest);
  expect(reading.headers.get("x-cache")).toBe("HIT");
  const reader = reading.body!.getReader();
  const head = await reader.read();
  expect(head.done).toBe(false);

  const evictor = a.evictor({});
  expect(await evictor.purge(layer.digest)).toBe("in-use");
  expect(await inBucket(bucket, layer.digest)).toBe(true);
  expect(await ledger()).toEqual([layer.digest]);
  expect(await ledgerBytes()).toBe(layer.size);
  expect(a.index.getBlob(layer.digest)).toBeDefined();

  expect(await rest(head.value!, reader)).toEqual({ digest: layer.digest, length: layer.size });

  while (await probe.send("EXISTS", [`docxy:reading:${layer.digest}`])) await Bun.sleep(5);
  expect(await evictor.purge(layer.digest)).toBe("removed");
  expect(await inBucket(bucket, layer.digest)).toBe(false);
  expect(await ledger()).toEqual([]);
  expect(await ledgerBytes()).toBe(0);
  expect(a.index.getBlob(layer.digest)).toBeUndefined();
  expect(await probe.send("EXISTS", [`docxy:evicting:${layer.digest}`])).toBeFalsy(); // readers may register again
  expect(await evictor.purge(layer.digest)).toBe("absent");
}, 60_000);

test("an admin's purge of an unread blob removes its object and ledger entry: the fleet's total drops by its size, and so does the fleet gauge", async () => {
  const { bucket, node } = await fleet();
  const [a, b] = [await node("a"), await node("b")];
  const [first, second] = layers(2) as [{ repository: string; layer: Layer }, { repository: string; layer: Layer }];
  await digestOf(await a.get(first.repository, first.layer.digest));
  await digestOf(await b.get(second.repository, second.layer.digest));
  await Promise.all([a.lru.flush(), b.lru.flush()]);
  const total = first.layer.size + second.layer.size;
  expect(await ledgerBytes()).toBe(total);

  const metrics = new Metrics({ fleetCacheBytes: () => a.lru.fleetBytes });
  expect(await a.lru.refreshTotal()).toBe(total);
  expect(sample(await metrics.registry.metrics(), "docxy_fleet_cache_size_bytes")).toBe(total);

  // A purges the blob B stored (A's index never knew it): the ledger knew it, so it is removed.
  expect(await a.evictor({}).purge(second.layer.digest)).toBe("removed");
  expect(await inBucket(bucket, second.layer.digest)).toBe(false);
  expect(await inBucket(bucket, first.layer.digest)).toBe(true);
  expect(await ledger()).toEqual([first.layer.digest]);
  expect(await ledgerBytes()).toBe(first.layer.size);
  expect(await a.lru.refreshTotal()).toBe(first.layer.size);
  expect(sample(await metrics.registry.metrics(), "docxy_fleet_cache_size_bytes")).toBe(first.layer.size);
}, 60_000);

test("the fleet gauge never makes a scrape wait on Redis: none before Redis answered once, then the last total read, also while Redis hangs", async () => {
  let answering = false;
  const hanging = new Promise<undefined>(() => undefined);
  const redisStub = { send: (command: string) => (answering && command === "GET" ? Promise.resolve({ value: "42" }) : hanging) };
  const lru = new SharedLru(redisStub as unknown as FleetRedis);
  cleanups.push(() => lru.close());
  const metrics = new Metrics({ fleetCacheBytes: () => lru.fleetBytes });
  const scrape = async () => {
    const started = performance.now();
    const value = sample(await metrics.registry.metrics(), "docxy_fleet_cache_size_bytes");
    expect(performance.now() - started).toBeLessThan(500);
    return value;
  };
  expect(await scrape()).toBeUndefined();
  answering = true;
  expect(await lru.refreshTotal()).toBe(42);
  answering = false;
  void lru.refreshTotal(); // hangs, as a Redis that stopped answering would until FleetRedis gives up
  expect(await scrape()).toBe(42);
}, 10_000);

/** The value of one sample line (`name value`), undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
