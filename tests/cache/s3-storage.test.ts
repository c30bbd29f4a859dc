// S3Storage against a real Swift with s3api (tests/support/swift.ts): a blob appears under its
// digest only when committed, whole; an aborted, failed or cut fill leaves no object; followers
// read a fill in progress; listing and delete work by digest. One Swift for the whole file.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Fill } from "../../src/cache/fill";
import { S3Storage } from "../../src/cache/s3-storage";
import type { TempBlob } from "../../src/cache/blob-storage";
import { sha256 } from "../support/layers";
import { startSwift, type Swift } from "../support/swift";
import { startTrouble } from "../support/trouble";

const MiB = 1024 * 1024;
let swift: Swift;
let storage: S3Storage;
let bucket: Bun.S3Client;
let spoolDir: string;

beforeAll(async () => {
  swift = await startSwift();
  await swift.createBucket("docxy");
  spoolDir = mkdtempSync(join(tmpdir(), "docxy-s3-spool-"));
  const { endpoint, accessKeyId, secretAccessKey, region } = swift;
  storage = await S3Storage.open({ endpoint, accessKeyId, secretAccessKey, region, bucket: "docxy", prefix: "node", spoolDir });
  bucket = new Bun.S3Client({ endpoint, accessKeyId, secretAccessKey, region, bucket: "docxy" });
}, 120_000);
afterAll(async () => {
  await swift?.stop();
  rmSync(spoolDir, { recursive: true, force: true });
});

/** Deterministic bytes that differ per `seed` and per position (no two parts alike). */
function blob(length: number, seed: number): { bytes: Uint8Array; digest: string } {
  const bytes = new Uint8Array(length);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return { bytes, digest: sha256(bytes) };
}

async function writeAll(temp: TempBlob, bytes: Uint8Array, chunk = 256 * 1024): Promise<void> {
  for (let offset = 0; offset < bytes.length; offset += chunk) await temp.write(bytes.slice(offset, offset + chunk));
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const keyOf = (digest: string) => `node/blobs/sha256/${digest.slice("sha256:".length)}`;

describe("S3Storage", () => {
  test("a multi-part blob appears only at commit, then reads back whole and by ranges", async () => {
    const { bytes, digest } = blob(12 * MiB + 123, 1); // three 5 MiB parts: a real multipart upload
    swift.clearRequests();
    const temp = await storage.begin(digest);
    await writeAll(temp, bytes);
    // Every byte went in, parts are up, yet nothing is visible under the digest before commit.
    expect(await storage.open(digest)).toBeUndefined();
    expect(await bucket.file(keyOf(digest)).exists()).toBe(false);
    await temp.commit(digest);

    const stored = await storage.open(digest);
    expect(stored?.size).toBe(bytes.length);
    expect(stored?.path).toBeUndefined();
    expect(sha256(await collect(stored!.stream(0, bytes.length - 1)))).toBe(digest);
    for (const [start, end] of [[0, 0], [5 * MiB - 3, 5 * MiB + 2], [bytes.length - 1, bytes.length - 1], [1000, 3 * MiB]] as const) {
      expect(Buffer.from(await collect(stored!.stream(start, end))).equals(bytes.subarray(start, end + 1))).toBe(true);
    }
    const methods = (await swift.requests()).filter((r) => r.path.startsWith(`/docxy/${keyOf(digest)}`)).map((r) => r.method);
    expect(methods.filter((m) => m === "POST")).toHaveLength(2); // CreateMultipartUpload, CompleteMultipartUpload: one upload
    expect(methods.filter((m) => m === "PUT")).toHaveLength(3); // the three parts, nothing uploaded twice
    expect(readdirSync(spoolDir)).toEqual([]); // the spool is gone once committed
  }, 60_000);

  test("an empty blob commits, and reads back as no bytes (S3 answers 416 to any range of it)", async () => {
    const { bytes, digest } = blob(0, 13);
    const temp = await storage.begin(digest);
    await temp.commit(digest);
    const stored = await storage.open(digest);
    expect(stored?.size).toBe(0);
    expect(await collect(stored!.stream(0, -1))).toEqual(bytes);
  });

  test("read() follows the fill from the spool, and goes on from the object after commit", async () => {
    const { bytes, digest } = blob(3 * MiB, 2);
    const temp = await storage.begin(digest);
    await writeAll(temp, bytes.subarray(0, 2 * MiB));
    expect(Buffer.from(await temp.read(100, 1000)).equals(bytes.subarray(100, 1100))).toBe(true);
    expect((await temp.read(2 * MiB - 10, 100)).length).toBe(10); // only what was written
    expect((await temp.read(2 * MiB, 100)).length).toBe(0);
    await writeAll(temp, bytes.subarray(2 * MiB));
    await temp.commit(digest);
    expect(Buffer.from(await temp.read(3 * MiB - 500, 1000)).equals(bytes.subarray(3 * MiB - 500))).toBe(true);
  }, 30_000);

  test("abort after parts were uploaded leaves no object, listed or by HEAD, and no orphaned parts", async () => {
    const { bytes, digest } = blob(11 * MiB, 3);
    swift.clearRequests();
    const temp = await storage.begin(digest);
    await writeAll(temp, bytes);
    await temp.abort();
    await temp.abort(); // twice is fine
    expect(await storage.open(digest)).toBeUndefined();
    expect(await bucket.file(keyOf(digest)).exists()).toBe(false);
    expect((await Array.fromAsync(storage.list())).map((b) => b.digest)).not.toContain(digest);
    await expect(temp.read(0, 10)).rejects.toThrow("aborted");
    await expect(temp.write(new Uint8Array(1))).rejects.toThrow();
    // The parts already up are deleted too (no orphaned upload): Bun sends AbortMultipartUpload
    // once its parts in flight are done, which can be after abort() returned.
    const abortSent = async () =>
      (await swift.requests()).some((r) => r.method === "DELETE" && r.path.startsWith(`/docxy/${keyOf(digest)}?uploadId=`) && r.status === 204);
    for (let tries = 0; tries < 100 && !(await abortSent()); tries++) await Bun.sleep(100);
    expect(await abortSent()).toBe(true);
  }, 30_000);

  test("a fill whose upstream breaks mid-way commits nothing; a whole one commits and its follower gets every byte", async () => {
    const broken = blob(8 * MiB, 4);
    const whole = blob(7 * MiB, 5);
    const outcome = async ({ bytes, digest }: { bytes: Uint8Array; digest: string }, cutAt?: number) => {
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (cutAt !== undefined && sent >= cutAt) return controller.error(new Error("upstream connection reset"));
          if (sent >= bytes.length) return controller.close();
          controller.enqueue(bytes.slice(sent, sent + 512 * 1024));
          sent += 512 * 1024;
        },
      });
      let settled!: { committed: boolean; size: number; error?: Error };
      const fill = new Fill({
        digest,
        size: bytes.length,
        body,
        temp: await storage.begin(digest),
        storage,
        continueWithoutReaders: true,
        onSettled: (result) => void (settled = result),
      });
      const follower = collect(fill.read(0, bytes.length - 1)).then(sha256, (error: Error) => error.message);
      await fill.start();
      return { settled, followed: await follower };
    };

    const cut = await outcome(broken, 6 * MiB);
    expect(cut.settled.committed).toBe(false);
    expect(cut.followed).toBe("upstream connection reset"); // the follower's body fails, never looks complete
    expect(await storage.open(broken.digest)).toBeUndefined();
    expect(await bucket.file(keyOf(broken.digest)).exists()).toBe(false);

    const done = await outcome(whole);
    expect(done.settled).toEqual({ committed: true, size: whole.bytes.length });
    expect(done.followed).toBe(whole.digest);
    expect((await storage.open(whole.digest))?.size).toBe(whole.bytes.length);
  }, 60_000);

  test("begin() without a digest spools, uploads at commit, and list() sees every commit by digest and size", async () => {
    const blobs = [blob(1, 6), blob(10, 7), blob(6 * MiB, 8)];
    for (const { bytes, digest } of blobs) {
      const temp = await storage.begin();
      await writeAll(temp, bytes);
      expect(await storage.open(digest)).toBeUndefined();
      await temp.commit(digest);
    }
    await bucket.write("node/blobs/sha256/not-a-digest", "x"); // not ours: never listed
    await bucket.write("other/blobs/sha256/" + "a".repeat(64), "x"); // outside the prefix
    const listed = new Map((await Array.fromAsync(storage.list())).map(({ digest, size }) => [digest, size]));
    for (const { bytes, digest } of blobs) expect(listed.get(digest)).toBe(bytes.length);
    expect([...listed.keys()].every((digest) => /^sha256:[a-f0-9]{64}$/.test(digest))).toBe(true);
    expect(sha256(await collect((await storage.open(blobs[2]!.digest))!.stream(0, 6 * MiB - 1)))).toBe(blobs[2]!.digest);
  }, 60_000);

  test("list() follows continuation tokens past a 1000-key page", async () => {
    const many = await S3Storage.open({ ...swift, bucket: "docxy", prefix: "many/", spoolDir });
    const digests = Array.from({ length: 1005 }, (_, i) => sha256(`blob ${i}`));
    for (let i = 0; i < digests.length; i += 50) {
      await Promise.all(digests.slice(i, i + 50).map((d) => bucket.write(`many/blobs/sha256/${d.slice(7)}`, "12345")));
    }
    const listed = await Array.fromAsync(many.list());
    expect(listed).toHaveLength(1005);
    expect(new Set(listed.map((b) => b.digest))).toEqual(new Set(digests));
    expect(listed.every((b) => b.size === 5)).toBe(true);
  }, 120_000);

  test("delete removes the object; a stream opened before fails rather than serving stale bytes", async () => {
    const { bytes, digest } = blob(1000, 9);
    const temp = await storage.begin(digest);
    await temp.write(bytes);
    await temp.commit(digest);
    const stored = await storage.open(digest);
    await storage.delete(digest);
    expect(await storage.open(digest)).toBeUndefined();
    expect((await Array.fromAsync(storage.list())).map((b) => b.digest)).not.toContain(digest);
    await expect(collect(stored!.stream(0, 999))).rejects.toThrow(`GET s3://docxy/${keyOf(digest)} failed: NoSuchKey`);
    await storage.delete(digest); // deleting what is gone is fine
  });

  test("a commit under another digest than begun is refused and leaves nothing", async () => {
    const { bytes, digest } = blob(100, 10);
    const other = sha256("other");
    const temp = await storage.begin(digest);
    await temp.write(bytes);
    await expect(temp.commit(other)).rejects.toThrow(`begun for ${digest}`);
    await temp.abort();
    expect(await storage.open(digest)).toBeUndefined();
    expect(await storage.open(other)).toBeUndefined();
  });

  test("a store that refuses the credentials fails open() with a message naming the bucket, never the secret", async () => {
    const secretAccessKey = "wrong-secret-do-not-print";
    const attempt = S3Storage.open({ ...swift, secretAccessKey, bucket: "docxy", spoolDir });
    const error = (await attempt.then(() => undefined, (e: Error) => e))!;
    expect(error.message).toStartWith(`listing bucket docxy at ${swift.endpoint} failed: `);
    expect(`${error.message} ${String(error.cause)}`).not.toContain(secretAccessKey);
  });

  test("a store that takes connections and never answers fails open() within its timeout, saying so", async () => {
    const trouble = await startTrouble(swift.endpoint);
    await trouble.set({ kind: "hang" });
    try {
      const attempt = S3Storage.open({ ...swift, endpoint: trouble.url, bucket: "docxy", spoolDir, timeoutMs: { request: 300, stall: 300 } });
      await expect(attempt).rejects.toThrow(`listing bucket docxy at ${trouble.url} failed: no answer within 0.3s`);
      expect(trouble.faulted).toHaveLength(1); // it did ask
    } finally {
      await trouble.stop();
    }
  });

  test("a store that stops answering mid-upload fails the commit, not the writes: the spool still serves readers; abort does not hang", async () => {
    const trouble = await startTrouble(swift.endpoint);
    const { bytes, digest } = blob(16 * MiB, 17);
    const key = keyOf(digest).slice("node/".length); // this store has no prefix
    try {
      const hung = await S3Storage.open({ ...swift, endpoint: trouble.url, bucket: "docxy", spoolDir, timeoutMs: { request: 300, stall: 500 } });
      await trouble.set({ kind: "hang" });
      const temp = await hung.begin(digest);
      await writeAll(temp, bytes);
      expect(await temp.read(8 * MiB, 1000)).toEqual(bytes.subarray(8 * MiB, 8 * MiB + 1000));
      await expect(temp.commit(digest)).rejects.toThrow(`upload of s3://docxy/${key} took no bytes within 0.5s`);
      await temp.abort();
      expect(readdirSync(spoolDir)).toEqual([]);
    } finally {
      await trouble.stop();
    }
    expect(await bucket.file(key).exists()).toBe(false);
  });

  test("the Swift proxy killed mid-fill: the fill fails, and no object is there once it is back", async () => {
    const { bytes, digest } = blob(16 * MiB, 11);
    const temp = await storage.begin(digest);
    await writeAll(temp, bytes.subarray(0, 6 * MiB));
    await swift.killProxy();
    try {
      const failed = writeAll(temp, bytes.subarray(6 * MiB)).then(() => temp.commit(digest));
      const error = await failed.then(() => undefined, (e: Error) => e);
      expect(error?.message).toStartWith(`upload of s3://docxy/${keyOf(digest)} failed: `);
      await temp.abort();
    } finally {
      await swift.restartProxy();
    }
    expect(await storage.open(digest)).toBeUndefined();
    expect(await bucket.file(keyOf(digest)).exists()).toBe(false);
  }, 60_000);

  test("memory stays flat: a 256 MiB fill grows the process by far less than the blob", async () => {
    const chunk = blob(64 * 1024, 12).bytes; // an upstream body's chunk size
    const count = (256 * MiB) / chunk.length;
    const hasher = new Bun.CryptoHasher("sha256");
    for (let i = 0; i < count; i++) hasher.update(chunk);
    const digest = `sha256:${hasher.digest("hex")}`;
    Bun.gc(true);
    const before = process.memoryUsage().rss;
    let peak = before;
    const temp = await storage.begin(digest);
    for (let i = 0; i < count; i++) {
      await temp.write(chunk.slice()); // a fresh buffer each time, as an upstream body gives
      if (i % 64 === 0) peak = Math.max(peak, process.memoryUsage().rss);
    }
    await temp.commit(digest);
    expect((await storage.open(digest))?.size).toBe(256 * MiB);
    // Measured ~50 MiB for 128 and for 512 MiB alike (Bun's 5 MiB parts in flight, garbage not yet
    // collected), and once 96 MiB when the collector ran late on a busy CI machine: a bound, not a
    // share of the blob. Buffering the blob would cost all 256 MiB, which this still catches.
    expect(peak - before).toBeLessThan(160 * MiB);
  }, 120_000);
});
