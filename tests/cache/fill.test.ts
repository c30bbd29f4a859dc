/**
 * One fill in process (cache/fill.ts, with cache/fill-spool.ts and
 * cache/memory-pieces.ts holding its bytes): the body of a real upstream GET
 * (the test registry's CDN) into the real filesystem store, followed by
 * several readers at once; a body that does not match its digest or length
 * commits nothing and fails its readers. Slow and failing disks:
 * tests/cache/fill-spool.test.ts. Stalls, clients leaving and kill -9 through
 * the binary: tests/integration/cache/fill.test.ts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Fill } from "../../src/cache/fill";
import { FsStorage } from "../../src/cache/fs-storage";
import { Handoff, type FileBody } from "../../src/util/file-response";
import { countingPassThrough, readsOf } from "../support/cache/in-process";
import { blobPath, startUpstream, type Upstream } from "../support/upstream";

let upstream: Upstream;
let storage: FsStorage;
const dir = mkdtempSync(join(tmpdir(), "docxy-fill-"));
beforeAll(async () => {
  upstream = await startUpstream({ onlyThroughProxy: true });
  storage = await FsStorage.open(dir);
}, 120_000);
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await upstream?.stop();
});

/** A fill of `digest` (claimed to be `size` bytes) from `body`, with its outcome. */
async function fillOf(digest: string, size: number, body: ReadableStream<Uint8Array>) {
  let settled!: (outcome: { committed: boolean; size: number; error?: Error }) => void;
  const outcome = new Promise<{ committed: boolean; size: number; error?: Error }>((resolve) => (settled = resolve));
  const fill = new Fill({ digest, size, body, temp: await storage.begin(), storage, continueWithoutReaders: true, onSettled: settled });
  return { fill, outcome };
}

async function bytesOf(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

test("an upstream body is followed by every reader, whole or by range, then committed under its digest", async () => {
  const layer = upstream.images.alpine.manifests[0]!.layers[0]!;
  const expected = readFileSync(blobPath(upstream.rootDir, layer.digest));
  const remote = countingPassThrough();
  const { response } = await remote.fetch(readsOf(upstream).request("blobs", "library/alpine", layer.digest), { method: "GET", withoutRange: true });
  expect(response.status).toBe(200);
  const { fill, outcome } = await fillOf(layer.digest, layer.size, response.body!);
  const readers = [fill.read(0, layer.size - 1), fill.read(0, layer.size - 1), fill.read(10, 19)];
  expect(fill.joinable).toBe(true);
  void fill.start();
  const [whole, again, range] = await Promise.all(readers.map(bytesOf));
  expect(whole).toEqual(new Uint8Array(expected));
  expect(again).toEqual(new Uint8Array(expected));
  expect(range).toEqual(new Uint8Array(expected.subarray(10, 20)));
  expect(await outcome).toEqual({ committed: true, size: layer.size });
  expect(fill.state).toBe("done");
  // A reader arriving after the commit reads the stored blob.
  expect(await bytesOf(fill.read(0, layer.size - 1))).toEqual(new Uint8Array(expected));
  expect((await storage.open(layer.digest))?.size).toBe(layer.size);
  expect(remote.calls).toHaveLength(1);
});

test("a reader whose taker accepted the handoff ends at the commit, the rest being a range of the committed file", async () => {
  const bytes = crypto.getRandomValues(new Uint8Array(3 * 1024 * 1024 + 7));
  const digest = `sha256:${new Bun.CryptoHasher("sha256").update(bytes).digest("hex")}`;
  const { fill, outcome } = await fillOf(digest, bytes.length, new Response(bytes).body!);
  const handoff = new Handoff();
  handoff.accepted = true;
  const reader = fill.read(5, bytes.length - 1, handoff).getReader();
  void fill.start();
  const first = await reader.read(); // a slow client: one chunk before the commit
  expect((await outcome).committed).toBe(true);
  const parts = [first.value!];
  for (let r = await reader.read(); !r.done; r = await reader.read()) parts.push(r.value);
  const streamed = Buffer.concat(parts);
  const rest = handoff.rest!;
  expect(rest.path).toBe((await storage.open(digest))!.path!);
  expect([rest.start, rest.end]).toEqual([5 + streamed.length, bytes.length - 1]);
  expect(rest.start).toBeLessThan(bytes.length); // the handoff happened before the last byte
  const sent = Buffer.concat([streamed, readFileSync(rest.path).subarray(rest.start, rest.end + 1)]);
  expect(sent.equals(Buffer.from(bytes.subarray(5)))).toBe(true);
  // The taker is a reader until it is done (the blob is in use; blob-readers.ts).
  expect(fill.readerCount).toBe(1);
  rest.done();
  expect(fill.readerCount).toBe(0);
});

test("a body that does not hash to its digest fails every reader and commits nothing", async () => {
  const bytes = crypto.getRandomValues(new Uint8Array(50_000));
  const wrong = "sha256:" + "1".repeat(64);
  const { fill, outcome } = await fillOf(wrong, bytes.length, new Response(bytes).body!);
  const reader = bytesOf(fill.read(0, bytes.length - 1));
  void fill.start();
  await expect(reader).rejects.toThrow("digest mismatch");
  const settled = await outcome;
  expect(settled.committed).toBe(false);
  expect(settled.error?.message).toContain("digest mismatch");
  expect(await storage.open(wrong)).toBeUndefined();
  expect(fill.joinable).toBe(false);
});

test("a body shorter than its announced length fails its readers, who never get a complete-looking body", async () => {
  const bytes = crypto.getRandomValues(new Uint8Array(10_000));
  const digest = `sha256:${new Bun.CryptoHasher("sha256").update(bytes).digest("hex")}`;
  const { fill, outcome } = await fillOf(digest, bytes.length + 1, new Response(bytes).body!);
  const reader = bytesOf(fill.read(0, bytes.length));
  void fill.start();
  await expect(reader).rejects.toThrow(`upstream sent ${bytes.length} of ${bytes.length + 1} bytes`);
  expect((await outcome).committed).toBe(false);
  expect(await storage.open(digest)).toBeUndefined();
});

/** A body the test feeds by hand, chunk by chunk. */
function handFedBody() {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
  return { body, controller };
}

/** Reads `rest` the way the server edge does (server/file-sender.ts): as far as its growth allows, waiting in between. */
async function takeGrowing(rest: FileBody, whileFilling: () => boolean): Promise<{ bytes: Buffer; mostBeforeCommit: number }> {
  const parts: Buffer[] = [];
  let position = rest.start;
  let mostBeforeCommit = -1;
  try {
    while (position <= rest.end) {
      const filling = whileFilling();
      const limit = rest.growth!.readable(position);
      if (filling) mostBeforeCommit = Math.max(mostBeforeCommit, limit);
      if (limit <= position) {
        await rest.growth!.grown();
        continue;
      }
      const buffer = Buffer.alloc(Math.min(limit - position, 1 << 20));
      const { bytesRead } = await rest.handle!.read(buffer, 0, buffer.length, position);
      parts.push(buffer.subarray(0, bytesRead));
      position += bytesRead;
    }
  } finally {
    await rest.handle!.close();
    rest.done();
  }
  return { bytes: Buffer.concat(parts), mostBeforeCommit };
}

test("a reader fallen behind the bytes kept in memory is handed the temp file while the fill runs, and gets every byte", async () => {
  const MiB = 1024 * 1024;
  const bytes = crypto.getRandomValues(new Uint8Array(20 * MiB + 3));
  const digest = `sha256:${new Bun.CryptoHasher("sha256").update(bytes).digest("hex")}`;
  const { body, controller } = handFedBody();
  const temp = await storage.begin();
  let settled!: (outcome: { committed: boolean }) => void;
  const outcome = new Promise<{ committed: boolean }>((resolve) => (settled = resolve));
  const fill = new Fill({ digest, size: bytes.length, body, temp, storage, continueWithoutReaders: true, onSettled: settled });
  const handoff = new Handoff();
  handoff.accepted = true;
  const reader = fill.read(0, bytes.length - 1, handoff).getReader();
  void fill.start();
  // 12 MiB arrive and reach the disk before the reader asks for its first byte: more than the
  // fill keeps in memory (8 MiB), so byte 0 is only in the file.
  for (let at = 0; at < 12 * MiB; at += MiB) controller.enqueue(bytes.slice(at, at + MiB));
  while (statSync(temp.path!).size < 12 * MiB) await Bun.sleep(5);
  expect((await reader.read()).done).toBe(true); // the stream ended at once: the rest is the file's
  const rest = handoff.rest!;
  expect([rest.start, rest.end, rest.path]).toEqual([0, bytes.length - 1, temp.path!]);
  expect(fill.readerCount).toBe(1);
  const taken = takeGrowing(rest, () => fill.state === "filling");
  for (let at = 12 * MiB; at < bytes.length; at += MiB) controller.enqueue(bytes.slice(at, at + MiB));
  controller.close();
  expect((await outcome).committed).toBe(true);
  const { bytes: sent, mostBeforeCommit } = await taken;
  expect(sent.equals(Buffer.from(bytes))).toBe(true);
  // Until the blob was verified the last byte was held back, as from memory.
  expect(mostBeforeCommit).toBeLessThanOrEqual(bytes.length - 1);
  expect(fill.readerCount).toBe(0);
});

test("a file reader of a fill that fails is told so, never handed bytes past the failure as a whole body", async () => {
  const MiB = 1024 * 1024;
  const bytes = crypto.getRandomValues(new Uint8Array(16 * MiB));
  const { body, controller } = handFedBody();
  const temp = await storage.begin();
  const fill = new Fill({ digest: "sha256:" + "2".repeat(64), size: 32 * MiB, body, temp, storage, continueWithoutReaders: true, onSettled: () => {} });
  const handoff = new Handoff();
  handoff.accepted = true;
  const reader = fill.read(0, 32 * MiB - 1, handoff).getReader();
  void fill.start();
  for (let at = 0; at < bytes.length; at += MiB) controller.enqueue(bytes.slice(at, at + MiB));
  while (statSync(temp.path!).size < bytes.length) await Bun.sleep(5);
  expect((await reader.read()).done).toBe(true);
  const taken = takeGrowing(handoff.rest!, () => true);
  controller.error(new Error("upstream reset"));
  await expect(taken).rejects.toThrow("upstream reset");
  expect(fill.state).toBe("failed");
  expect(fill.readerCount).toBe(0);
});
