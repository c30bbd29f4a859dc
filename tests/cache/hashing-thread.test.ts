/**
 * SHA-256 on the worker thread (cache/hashing-thread.ts, with its worker
 * cache/hashing-worker.ts): the digests are those of Bun's own hasher on the
 * same bytes, streams interleaved in one worker stay apart, a caller far
 * ahead of the worker is told to wait, and a stopped worker fails the streams
 * in progress instead of leaving them hanging.
 */
import { afterAll, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { IN_THREAD } from "../../src/cache/hashing";
import { OffThreadHashing } from "../../src/cache/hashing-thread";

const hashing = new OffThreadHashing();
afterAll(() => hashing.close());

const sha256 = (...chunks: Uint8Array[]) => {
  const hasher = new Bun.CryptoHasher("sha256");
  for (const chunk of chunks) hasher.update(chunk);
  return hasher.digest("hex");
};

test("chunks hashed on the worker give the digest of the whole, and the caller keeps its bytes", async () => {
  const chunks = Array.from({ length: 20 }, (_, i) => new Uint8Array(randomBytes(1000 + i * 4099)));
  const kept = chunks.map((chunk) => chunk.slice());
  const stream = hashing.start();
  for (const chunk of chunks) await stream.update(chunk);
  expect(await stream.digest()).toBe(sha256(...kept));
  expect(chunks).toEqual(kept); // nothing of the caller's was transferred away
});

test("streams interleaved on the one worker are hashed apart", async () => {
  const a = [randomBytes(5000), randomBytes(7000)].map((b) => new Uint8Array(b));
  const b = [randomBytes(3000), randomBytes(9000)].map((b) => new Uint8Array(b));
  const [sa, sb] = [hashing.start(), hashing.start()];
  sa.update(a[0]!);
  sb.update(b[0]!);
  sa.update(a[1]!);
  sb.update(b[1]!);
  expect(await Promise.all([sa.digest(), sb.digest()])).toEqual([sha256(...a), sha256(...b)]);
});

test("a caller 8 MiB ahead of the worker is handed a promise to wait on, and the digest is still right", async () => {
  const chunk = new Uint8Array(randomBytes(1024 * 1024));
  const stream = hashing.start();
  let waits = 0;
  for (let i = 0; i < 40; i++) {
    const behind = stream.update(chunk);
    if (behind) {
      waits++;
      await behind;
    }
  }
  expect(waits).toBeGreaterThan(0);
  expect(await stream.digest()).toBe(sha256(...Array.from({ length: 40 }, () => chunk)));
});

test("a dropped stream is forgotten; the next ones are unaffected", async () => {
  const dropped = hashing.start();
  dropped.update(new Uint8Array(randomBytes(100)));
  dropped.drop();
  const bytes = new Uint8Array(randomBytes(100));
  const next = hashing.start();
  next.update(bytes);
  expect(await next.digest()).toBe(sha256(bytes));
});

test("a stopped worker fails the streams in progress; a new stream starts a new worker", async () => {
  const own = new OffThreadHashing();
  const stream = own.start();
  stream.update(new Uint8Array(10));
  own.close();
  await expect(stream.digest()).rejects.toThrow("hashing stopped");
  expect(() => stream.update(new Uint8Array(1))).toThrow("hashing stopped");
  const again = own.start();
  again.update(new Uint8Array(3));
  expect(await again.digest()).toBe(sha256(new Uint8Array(3)));
  own.close();
});

test("IN_THREAD gives the same digest on the calling thread", async () => {
  const bytes = new Uint8Array(randomBytes(4096));
  const stream = IN_THREAD.start();
  expect(stream.update(bytes)).toBeUndefined();
  expect(await stream.digest()).toBe(sha256(bytes));
});
