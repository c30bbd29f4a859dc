/**
 * The filesystem storage on real files in a temp dir: a fill readable while
 * it is written, atomic commits, nothing left behind by aborts or crashes,
 * and digests that cannot escape the cache directory.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FsStorage } from "../../src/cache/fs-storage";

const root = mkdtempSync(join(tmpdir(), "docxy-fs-storage-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let dirs = 0;
const freshDir = () => join(root, `cache-${++dirs}`);

function digestOf(bytes: Uint8Array): string {
  return `sha256:${new Bun.CryptoHasher("sha256").update(bytes).digest("hex")}`;
}

function randomBytes(length: number) {
  return crypto.getRandomValues(new Uint8Array(length));
}

async function collect(iterable: AsyncIterable<{ digest: string; size: number }>) {
  const all = [];
  for await (const entry of iterable) all.push(entry);
  return all.sort((a, b) => a.digest.localeCompare(b.digest));
}

async function store(storage: FsStorage, bytes: Uint8Array): Promise<string> {
  const temp = await storage.begin();
  await temp.write(bytes);
  const digest = digestOf(bytes);
  await temp.commit(digest);
  return digest;
}

test("a fill written in chunks is readable while it grows, then served by range once committed", async () => {
  const dir = freshDir();
  const storage = await FsStorage.open(dir);
  const bytes = randomBytes(300_000);
  const digest = digestOf(bytes);
  const temp = await storage.begin();

  await temp.write(bytes.subarray(0, 100_000));
  await temp.write(bytes.subarray(100_000, 250_000));
  expect(await temp.read(90_000, 20_000)).toEqual(bytes.subarray(90_000, 110_000));
  // Only what is written: short at the current end, empty past it.
  expect(await temp.read(240_000, 50_000)).toEqual(bytes.subarray(240_000, 250_000));
  expect((await temp.read(250_000, 10)).length).toBe(0);
  expect(await storage.open(digest)).toBeUndefined();

  await temp.write(bytes.subarray(250_000));
  await temp.commit(digest);
  // A follower still behind the fill keeps reading after the commit.
  expect(await temp.read(299_990, 100)).toEqual(bytes.subarray(299_990));

  const blob = await storage.open(digest);
  expect(blob?.size).toBe(300_000);
  expect(blob?.path).toBe(join(dir, "blobs", "sha256", digest.slice("sha256:".length)));
  expect(new Uint8Array(await new Response(blob!.stream(1000, 199_999)).arrayBuffer())).toEqual(bytes.subarray(1000, 200_000));
  expect(new Uint8Array(await new Response(blob!.stream(0, 299_999)).arrayBuffer())).toEqual(bytes);
  expect(readdirSync(join(dir, "tmp"))).toEqual([]);
});

test("writes issued without awaiting land in call order, before a commit issued after them; reads run alongside", async () => {
  const storage = await FsStorage.open(freshDir());
  const chunks = Array.from({ length: 20 }, () => randomBytes(10_000));
  const bytes = new Uint8Array(Buffer.concat(chunks));
  const temp = await storage.begin();
  const reads: Promise<Uint8Array>[] = [];
  const writes = chunks.map((chunk, i) => {
    reads.push(temp.read(i * 10_000, 10_000));
    return temp.write(chunk);
  });
  const commit = temp.commit(digestOf(bytes)); // the writes are still queued: they belong to the blob
  await Promise.all(writes);
  await commit;
  for (const [i, read] of (await Promise.all(reads)).entries()) {
    expect(read).toEqual(bytes.subarray(i * 10_000, i * 10_000 + read.length));
  }
  expect(await temp.read(0, bytes.length)).toEqual(bytes);
  expect((await storage.open(digestOf(bytes)))?.size).toBe(bytes.length);
});

test("reads issued just before and during a commit both succeed", async () => {
  const storage = await FsStorage.open(freshDir());
  const bytes = randomBytes(1 << 20);
  const temp = await storage.begin();
  await temp.write(bytes);
  const before = Array.from({ length: 16 }, (_, i) => temp.read(i * 65_536, 65_536));
  const commit = temp.commit(digestOf(bytes));
  const during = Array.from({ length: 16 }, (_, i) => temp.read(i * 65_536, 65_536));
  await commit;
  expect(Buffer.concat(await Promise.all(before))).toEqual(Buffer.from(bytes));
  expect(Buffer.concat(await Promise.all(during))).toEqual(Buffer.from(bytes));
});

test("abort leaves nothing behind, is idempotent, and later writes and commits reject", async () => {
  const dir = freshDir();
  const storage = await FsStorage.open(dir);
  const bytes = randomBytes(1000);
  const temp = await storage.begin();
  await temp.write(bytes);
  await temp.abort();
  await temp.abort();
  expect(readdirSync(join(dir, "tmp"))).toEqual([]);
  await expect(temp.write(bytes)).rejects.toThrow("already committed or aborted");
  await expect(temp.read(0, 10)).rejects.toThrow("aborted");
  await expect(temp.commit(digestOf(bytes))).rejects.toThrow("already committed or aborted");
  expect(await storage.open(digestOf(bytes))).toBeUndefined();
  expect(await collect(storage.list())).toEqual([]);
});

test("a write the OS refuses rejects, poisons the fill, and abort still cleans up", async () => {
  // A real EFBIG from the kernel: a child process with a 1 MiB file size limit (and SIGXFSZ
  // ignored, so the write fails instead of killing it) writes past the limit.
  const dir = freshDir();
  const script = `
    const { FsStorage } = await import(${JSON.stringify(join(import.meta.dir, "../../src/cache/fs-storage.ts"))});
    const storage = await FsStorage.open(${JSON.stringify(dir)});
    const temp = await storage.begin();
    const outcome = (promise) => promise.then(() => "ok", (error) => error.code ?? error.message);
    const result = {
      first: await outcome(temp.write(new Uint8Array(600_000))),
      overLimit: await outcome(temp.write(new Uint8Array(600_000))),
      next: await outcome(temp.write(new Uint8Array(10))),
      commit: await outcome(temp.commit("sha256:${"a".repeat(64)}")),
      abort: await outcome(temp.abort()),
    };
    console.log(JSON.stringify(result));
  `;
  const child = Bun.spawn(["sh", "-c", 'trap "" XFSZ; ulimit -f 2048; exec "$0" -e "$1"', process.execPath, script], {
    stdout: "pipe",
    stderr: "inherit",
  });
  const output = await new Response(child.stdout).text();
  expect(await child.exited).toBe(0);
  expect(JSON.parse(output)).toEqual({
    first: "ok",
    overLimit: "EFBIG",
    next: "an earlier write to this temp blob failed",
    commit: "cannot commit a temp blob after a failed write",
    abort: "ok",
  });
  expect(readdirSync(join(dir, "tmp"))).toEqual([]);
  expect(await collect((await FsStorage.open(dir)).list())).toEqual([]);
});

test("abort after a commit keeps the committed blob", async () => {
  const storage = await FsStorage.open(freshDir());
  const bytes = randomBytes(500);
  const temp = await storage.begin();
  await temp.write(bytes);
  await temp.commit(digestOf(bytes));
  await temp.abort();
  expect((await storage.open(digestOf(bytes)))?.size).toBe(500);
  await expect(temp.write(bytes)).rejects.toThrow("already committed or aborted");
});

test("two fills committing the same digest leave one file", async () => {
  const dir = freshDir();
  const storage = await FsStorage.open(dir);
  const bytes = randomBytes(2000);
  const first = await storage.begin();
  const second = await storage.begin();
  await first.write(bytes);
  await second.write(bytes);
  await first.commit(digestOf(bytes));
  await second.commit(digestOf(bytes));
  expect(readdirSync(join(dir, "blobs", "sha256"))).toEqual([digestOf(bytes).slice("sha256:".length)]);
  expect(readdirSync(join(dir, "tmp"))).toEqual([]);
  expect(await second.read(0, 2000)).toEqual(bytes);
});

test("open() deletes leftovers of a crash in tmp/ and keeps committed blobs", async () => {
  const dir = freshDir();
  const storage = await FsStorage.open(dir);
  const digest = await store(storage, randomBytes(64));
  // What a kill -9 in the middle of a fill leaves behind.
  writeFileSync(join(dir, "tmp", crypto.randomUUID()), randomBytes(64));
  mkdirSync(join(dir, "tmp", "stray-dir", "nested"), { recursive: true });

  const reopened = await FsStorage.open(dir);
  expect(readdirSync(join(dir, "tmp"))).toEqual([]);
  expect(await collect(reopened.list())).toEqual([{ digest, size: 64 }]);
});

test("a temp blob dropped without commit or abort is cleaned up when collected, without ending the process", async () => {
  // In a child process: without the safety net Bun throws an uncaught error when the file handle is collected.
  const dir = freshDir();
  const script = `
    const { FsStorage } = await import(${JSON.stringify(join(import.meta.dir, "../../src/cache/fs-storage.ts"))});
    const storage = await FsStorage.open(${JSON.stringify(dir)});
    await (async () => { const temp = await storage.begin(); await temp.write(new Uint8Array(10)); })();
    for (let i = 0; i < 5; i++) { Bun.gc(true); await Bun.sleep(20); }
    console.log("alive");
  `;
  const child = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" });
  const [output, errors, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  expect({ output, errors, code }).toEqual({ output: "alive\n", errors: "", code: 0 });
  expect(readdirSync(join(dir, "tmp"))).toEqual([]);
});

test("list() returns committed blobs of every algorithm and ignores anything else", async () => {
  const dir = freshDir();
  const storage = await FsStorage.open(dir);
  const a = await store(storage, randomBytes(10));
  const b = await store(storage, randomBytes(20));
  const sha512 = `sha512:${"b".repeat(128)}`;
  const temp = await storage.begin();
  await temp.write(randomBytes(30));
  await temp.commit(sha512);
  const open = await storage.begin();
  await open.write(randomBytes(40)); // a fill in progress is not listed
  writeFileSync(join(dir, "blobs", "sha256", "not-a-digest"), "x");
  writeFileSync(join(dir, "blobs", "stray-file"), "x");

  expect(await collect(storage.list())).toEqual(
    [
      { digest: a, size: 10 },
      { digest: b, size: 20 },
      { digest: sha512, size: 30 },
    ].sort((x, y) => x.digest.localeCompare(y.digest)),
  );
  await open.abort();
});

test("delete() removes a blob and ignores one that is already gone", async () => {
  const storage = await FsStorage.open(freshDir());
  const digest = await store(storage, randomBytes(10));
  await storage.delete(digest);
  await storage.delete(digest);
  expect(await storage.open(digest)).toBeUndefined();
});

test("digests that could name a path outside blobs/ are rejected before any file access", async () => {
  const dir = freshDir();
  const storage = await FsStorage.open(dir);
  writeFileSync(join(dir, "secret"), "x");
  const hostile = ["sha256:../../secret", "../secret:abc", "sha256:a/b", "sha256:", "sha256", "..:abc", "sha256:" + "a".repeat(63)];
  for (const digest of hostile) {
    await expect(storage.open(digest)).rejects.toThrow("invalid digest");
    await expect(storage.delete(digest)).rejects.toThrow("invalid digest");
    const temp = await storage.begin();
    await temp.write(new Uint8Array([1]));
    await expect(temp.commit(digest)).rejects.toThrow("invalid digest");
    await temp.abort();
  }
  expect(readdirSync(dir).sort()).toEqual(["blobs", "secret", "tmp"]);
  expect(readdirSync(join(dir, "tmp"))).toEqual([]);
});

test("open() fails with a clear error when the directory cannot be created", async () => {
  const file = join(root, "a-file");
  writeFileSync(file, "x");
  await expect(FsStorage.open(join(file, "cache"))).rejects.toThrow(`cache directory ${join(file, "cache")} is not usable: ENOTDIR`);
});
