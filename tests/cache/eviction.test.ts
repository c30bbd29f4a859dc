/**
 * Eviction over a real filesystem storage and a real SQLite index: the size
 * and age limits, entries in use, a blob that cannot be deleted, coalesced
 * runs. The size and duration syntax of the configuration is in
 * tests/config/units.test.ts.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalCoordination } from "../../src/cache/local-coordination";
import { SqliteIndex } from "../../src/cache/sqlite-index";
import { Evictor, type EvictorOptions } from "../../src/cache/eviction";
import { FsStorage } from "../../src/cache/fs-storage";

const root = mkdtempSync(join(tmpdir(), "docxy-eviction-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let caches = 0;
const START = 1_000_000;

/** A storage and index holding `sizes.length` blobs, the first one least recently used, one second apart. */
async function cacheWith(sizes: number[]) {
  const dir = join(root, `cache-${++caches}`);
  let time = START;
  const clock = { now: () => time, advance: (ms: number) => void (time += ms) };
  const storage = await FsStorage.open(dir);
  const index = SqliteIndex.open(join(dir, "index.sqlite"), clock);
  const digests: string[] = [];
  for (const size of sizes) {
    const bytes = crypto.getRandomValues(new Uint8Array(size));
    const digest = `sha256:${new Bun.CryptoHasher("sha256").update(bytes).digest("hex")}`;
    const temp = await storage.begin();
    await temp.write(bytes);
    await temp.commit(digest);
    index.putBlob(digest, size);
    digests.push(digest);
    clock.advance(1000);
  }
  const evictor = (options: Partial<EvictorOptions>) =>
    new Evictor({ index, storage, coordination: new LocalCoordination(), inUse: () => false, now: clock.now, ...options });
  /** Digests still in both the index and storage, in the order they were created. */
  const kept = async () => {
    const result = [];
    for (const digest of digests) {
      const inIndex = index.getBlob(digest) !== undefined;
      const inStorage = (await storage.open(digest)) !== undefined;
      expect(inIndex).toBe(inStorage);
      if (inIndex) result.push(digests.indexOf(digest));
    }
    return result;
  };
  return { dir, index, storage, clock, digests, evictor, kept };
}

test("over the size limit, the least recently used go until the rest fits", async () => {
  const cache = await cacheWith([100, 100, 100, 100, 100]);
  cache.index.touch(cache.digests[0]!); // now the most recent
  const result = await cache.evictor({ maxBytes: 250 }).run();
  expect(result).toEqual({ removed: 3, freedBytes: 300 });
  expect(await cache.kept()).toEqual([0, 4]);
  expect(cache.index.totalBytes()).toBe(200);

  expect(await cache.evictor({ maxBytes: 250 }).run()).toEqual({ removed: 0, freedBytes: 0 });
});

test("an entry in use is never removed: the next oldest goes instead", async () => {
  const cache = await cacheWith([100, 100, 100, 100]);
  const busy = new Set([cache.digests[0]!, cache.digests[2]!]);
  const result = await cache.evictor({ maxBytes: 200, inUse: (digest) => busy.has(digest) }).run();
  expect(result).toEqual({ removed: 2, freedBytes: 200 });
  expect(await cache.kept()).toEqual([0, 2]);
});

test("when everything left is in use, the cache stays over its limit rather than cut a reader off", async () => {
  const cache = await cacheWith([100, 100, 100]);
  const result = await cache.evictor({ maxBytes: 0, inUse: (digest) => digest !== cache.digests[1] }).run();
  expect(result).toEqual({ removed: 1, freedBytes: 100 });
  expect(await cache.kept()).toEqual([0, 2]);
});

test("pinned entries are never removed: a run that must drop everything drops everything else", async () => {
  const cache = await cacheWith([100, 100, 100, 100]);
  // The two least recently used are pinned, one by each of two entries.
  cache.index.pin("alpine:3.20", [cache.digests[0]!], true);
  cache.index.pin("acme/app:v1", [cache.digests[1]!], true);
  cache.clock.advance(60_000);
  const result = await cache.evictor({ maxBytes: 0, maxAgeMs: 1 }).run();
  expect(result).toEqual({ removed: 2, freedBytes: 200 });
  expect(await cache.kept()).toEqual([0, 1]);
  expect(cache.index.pinned()).toEqual({ bytes: 200, entries: 2 });

  // A pin entry that moved on releases what it held; one dropped from the configuration too.
  cache.index.pin("alpine:3.20", [], true);
  cache.index.retainPins(["alpine:3.20"]);
  expect(cache.index.pinned()).toEqual({ bytes: 0, entries: 0 });
  expect(await cache.evictor({ maxBytes: 0 }).run()).toEqual({ removed: 2, freedBytes: 200 });
  expect(await cache.kept()).toEqual([]);
});

test("entries unused for longer than the maximum age go even when the size fits", async () => {
  const cache = await cacheWith([10, 10, 10, 10]);
  // Created at START, +1s, +2s, +3s; now is START+4s: with a 2.5 s limit the first two are too old.
  const result = await cache.evictor({ maxAgeMs: 2500, maxBytes: 1_000_000 }).run();
  expect(result).toEqual({ removed: 2, freedBytes: 20 });
  expect(await cache.kept()).toEqual([2, 3]);

  cache.clock.advance(10_000);
  const busy = cache.digests[3]!;
  expect(await cache.evictor({ maxAgeMs: 2500, inUse: (digest) => digest === busy }).run()).toEqual({ removed: 1, freedBytes: 10 });
  expect(await cache.kept()).toEqual([3]);
});

test("age first, then size: both limits apply in one run", async () => {
  const cache = await cacheWith([50, 50, 50, 50, 50]);
  const result = await cache.evictor({ maxAgeMs: 3500, maxBytes: 100 }).run();
  // At START+5s with 3.5 s allowed, the two used at START and START+1s are too old; then
  // 150 bytes remain against 100, so the next oldest goes too.
  expect(result).toEqual({ removed: 3, freedBytes: 150 });
  expect(await cache.kept()).toEqual([3, 4]);
});

test("without limits nothing is removed", async () => {
  const cache = await cacheWith([10, 10]);
  expect(await cache.evictor({}).run()).toEqual({ removed: 0, freedBytes: 0 });
  expect(await cache.kept()).toEqual([0, 1]);
});

test("a blob that cannot be deleted is logged and skipped; the run goes on and the index keeps it", async () => {
  const cache = await cacheWith([100, 100, 100]);
  // A non-empty directory where the oldest blob's file should be: the real unlink fails.
  const stuck = cache.digests[0]!;
  const path = join(cache.dir, "blobs", "sha256", stuck.slice("sha256:".length));
  rmSync(path);
  mkdirSync(path);
  writeFileSync(join(path, "x"), "x");
  const logged: { message: string; fields: Record<string, string | number> }[] = [];
  const result = await cache.evictor({ maxBytes: 150, log: (message, fields) => logged.push({ message, fields }) }).run();
  expect(result).toEqual({ removed: 2, freedBytes: 200 });
  expect(cache.index.getBlob(stuck)).toBeDefined();
  expect(cache.index.getBlob(cache.digests[1]!)).toBeUndefined();
  expect(cache.index.getBlob(cache.digests[2]!)).toBeUndefined();
  expect(logged).toHaveLength(1);
  expect(logged[0]?.message).toBe("cache eviction could not delete a blob");
  expect(logged[0]?.fields.digest).toBe(stuck);
  expect(String(logged[0]?.fields.error)).toContain(path);
});

test("concurrent runs share one pass; a run after it finished starts a new one", async () => {
  const cache = await cacheWith([100, 100, 100, 100]);
  const evictor = cache.evictor({ maxBytes: 200 });
  const first = evictor.run();
  const second = evictor.run();
  expect(second).toBe(first);
  expect(await first).toEqual({ removed: 2, freedBytes: 200 });
  expect(await cache.kept()).toEqual([2, 3]);

  const third = evictor.run();
  expect(third).not.toBe(first);
  expect(await third).toEqual({ removed: 0, freedBytes: 0 });
});

test("a long run walks past more entries in use than one query returns", async () => {
  const sizes = Array.from({ length: 150 }, () => 10);
  const cache = await cacheWith(sizes);
  const busy = new Set(cache.digests.slice(0, 140));
  const result = await cache.evictor({ maxBytes: 1400, inUse: (digest) => busy.has(digest) }).run();
  expect(result).toEqual({ removed: 10, freedBytes: 100 });
  expect(cache.index.totalBytes()).toBe(1400);
});
