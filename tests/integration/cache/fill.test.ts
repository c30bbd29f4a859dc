/**
 * Blob fills when the upstream is an in-process fake the test drives (raw TCP,
 * so the blob keeps its Content-Length): clients follow one download as its
 * bytes arrive, Range works mid-fill (but completes only once the blob is
 * verified), clients leaving do not end it unless configured to, a cut or
 * wrong upstream body aborts the clients and commits nothing, and a kill -9
 * mid-fill leaves nothing that is served after a restart. A follower far
 * behind the fill is sent its temp file as it grows.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { statSync } from "node:fs";
import { join } from "node:path";
import { gate, startFakeRegistry, type FakeRegistry, type FakeReply, type FakeRequest } from "../../support/cache/fake-registry";
import { cachedBlobPath, isCached, readFully, sha256, startCachingDocxy, streamingGet, tempFiles, waitFor, type CachingDocxy } from "../../support/cache/harness";

const MIB = 1024 * 1024;

interface Blob {
  bytes: Uint8Array<ArrayBuffer>;
  digest: string;
  /** How a GET is answered after the head (default: every byte at once). */
  body?: (reply: FakeReply, bytes: Uint8Array) => Promise<void>;
  /** Holds the answer to an anonymous HEAD (docxy's access check) until released. */
  holdHead?: Promise<void>;
  /** Holds the response head of a GET until released. */
  holdGet?: Promise<void>;
}

const blobs = new Map<string, Blob>();
function newBlob(size: number, body?: Blob["body"]): Blob {
  const bytes = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) crypto.getRandomValues(bytes.subarray(at, Math.min(size, at + 65536)));
  const blob: Blob = { bytes, digest: sha256(bytes), body };
  blobs.set(blob.digest, blob);
  return blob;
}

const halfThen = (released: Promise<void>) => async (reply: FakeReply, bytes: Uint8Array) => {
  const half = Math.floor(bytes.length / 2);
  await reply.write(bytes.subarray(0, half));
  await released;
  await reply.write(bytes.subarray(half));
  reply.end();
};

async function answer(request: FakeRequest, reply: FakeReply): Promise<void> {
  const digest = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(request.path)?.[1];
  const blob = digest ? blobs.get(digest) : undefined;
  if (!blob) return reply.send(404, { "content-type": "application/json" }, '{"errors":[{"code":"BLOB_UNKNOWN","message":"unknown","detail":null}]}');
  const headers = { "content-type": "application/octet-stream", "content-length": String(blob.bytes.length), "docker-content-digest": blob.digest };
  if (request.method === "HEAD") {
    await blob.holdHead;
    return reply.send(200, headers);
  }
  await blob.holdGet;
  reply.head(200, headers);
  if (blob.body) return blob.body(reply, blob.bytes);
  await reply.write(blob.bytes);
  reply.end();
}

let fake: FakeRegistry;
let docxy: CachingDocxy;
const extra: CachingDocxy[] = [];
beforeAll(async () => {
  fake = await startFakeRegistry(answer);
  docxy = await startCachingDocxy(`${fake.toml}[upstream]\nheader_timeout = 5\n`);
}, 30_000);
afterAll(async () => {
  await Promise.all([docxy, ...extra].map((d) => d?.stop()));
  await fake?.stop();
});

const url = (d: CachingDocxy, blob: Blob, repository = "acme/fill") => `${d.url}/v2/${repository}/blobs/${blob.digest}`;
const upstreamGets = (blob: Blob) => fake.log.filter((r) => r.method === "GET" && r.path.endsWith(blob.digest)).length;
/** A GET whose connection docxy must abort: fetch rejects, or the body ends short of its Content-Length. */
async function abortedGet(target: string) {
  try {
    const response = await fetch(target);
    const { bytes, error } = await readFully(response);
    const declared = Number(response.headers.get("content-length"));
    // A cut that reaches docxy before the response head gets a registry error instead: a failure too.
    const failed = !response.ok || error !== undefined || !(bytes.length >= declared);
    return { aborted: failed, received: response.ok ? bytes.length : 0, cache: response.headers.get("x-cache") };
  } catch {
    return { aborted: true, received: 0, cache: null };
  }
}

/** docxy's log lines naming the blob: its access-log line for a request ends when the response closes (any log format). */
const accessLines = (d: CachingDocxy, blob: Blob) => d.log().split("\n").filter((l) => l.includes(blob.digest)).length;

test("clients arriving during a fill follow it: COALESCED, Range answered mid-fill, one upstream GET", async () => {
  const released = gate();
  const blob = newBlob(8 * MIB, halfThen(released.promise));
  const first = streamingGet(url(docxy, blob));
  expect((await first.head).headers["x-cache"]).toBe("MISS");
  await first.atLeast(MIB); // the first half is flowing; the second is held upstream

  const followers = Array.from({ length: 15 }, () => streamingGet(url(docxy, blob)));
  const heads = await Promise.all(followers.map((f) => f.head));
  const early = streamingGet(url(docxy, blob), { range: "bytes=0-1023" });
  const earlyHead = await early.head;
  expect({ status: earlyHead.status, cache: earlyHead.headers["x-cache"], range: earlyHead.headers["content-range"] }).toEqual({
    status: 206,
    cache: "COALESCED",
    range: `bytes 0-1023/${blob.bytes.length}`,
  });
  await early.atLeast(1023); // answered before the fill ends, all but its last byte, which waits for the digest check
  const tail = fetch(url(docxy, blob), { headers: { range: `bytes=${5 * MIB}-` } });

  released.open();
  expect(await early.done).toEqual({ digest: sha256(blob.bytes.subarray(0, 1024)), length: 1024 });
  const late = await tail;
  expect(late.status).toBe(206);
  expect(late.headers.get("content-range")).toBe(`bytes ${5 * MIB}-${blob.bytes.length - 1}/${blob.bytes.length}`);
  expect(new Uint8Array(await late.arrayBuffer())).toEqual(blob.bytes.subarray(5 * MIB));
  expect(heads.map((h) => h.headers["x-cache"])).toEqual(Array(15).fill("COALESCED"));
  for (const f of [first, ...followers]) expect(await f.done).toEqual({ digest: blob.digest, length: blob.bytes.length });
  expect(upstreamGets(blob)).toBe(1);
  await waitFor(() => isCached(docxy.cacheDir, blob.digest), "the commit");
}, 20_000);

test("16 concurrent cold GETs that all arrive before the upstream answers make one upstream GET", async () => {
  const released = gate();
  const blob = newBlob(MIB);
  blob.holdGet = released.promise;
  const all = Array.from({ length: 16 }, () => fetch(url(docxy, blob)).then(async (r) => ({ cache: r.headers.get("x-cache"), digest: sha256(await r.arrayBuffer()) })));
  await waitFor(() => upstreamGets(blob) >= 1, "the upstream GET");
  await Bun.sleep(300); // let the other 15 reach docxy while the upstream still holds its answer
  released.open();
  const results = await Promise.all(all);
  for (const r of results) expect(r.digest).toBe(blob.digest);
  expect({ upstreamGets: upstreamGets(blob), misses: results.filter((r) => r.cache === "MISS").length }).toEqual({ upstreamGets: 1, misses: 1 });
}, 20_000);

test("a fill that ends while a joining client's access check is in flight: no second download", async () => {
  const released = gate();
  const headReleased = gate();
  const blob = newBlob(2 * MIB, halfThen(released.promise));
  const first = streamingGet(url(docxy, blob, "acme/race"));
  expect((await first.head).headers["x-cache"]).toBe("MISS");
  blob.holdHead = headReleased.promise; // the joiner's anonymous access HEAD (first cached serve of acme/race)
  const joiner = fetch(url(docxy, blob, "acme/race"));
  await waitFor(() => fake.log.some((r) => r.method === "HEAD" && r.path.endsWith(blob.digest)), "the access check");
  released.open();
  expect(await first.done).toEqual({ digest: blob.digest, length: blob.bytes.length });
  await waitFor(() => isCached(docxy.cacheDir, blob.digest), "the commit");
  headReleased.open();
  const response = await joiner;
  expect(sha256(await response.arrayBuffer())).toBe(blob.digest);
  expect({ cache: response.headers.get("x-cache"), upstreamGets: upstreamGets(blob) }).toEqual({ cache: "HIT", upstreamGets: 1 });
}, 20_000);

test("the first client leaving mid-fill does not end the download for a coalesced one", async () => {
  const released = gate();
  const blob = newBlob(4 * MIB, halfThen(released.promise));
  const first = streamingGet(url(docxy, blob));
  await first.atLeast(MIB);
  const second = streamingGet(url(docxy, blob));
  expect((await second.head).headers["x-cache"]).toBe("COALESCED");
  first.destroy();
  await waitFor(() => accessLines(docxy, blob) >= 1, "docxy to see the first client leave");
  await Bun.sleep(200); // let a (wrong) upstream abort happen before the upstream goes on
  released.open();
  expect(await second.done).toEqual({ digest: blob.digest, length: blob.bytes.length });
  expect(upstreamGets(blob)).toBe(1);
}, 20_000);

test("continue_on_disconnect: the only client leaving mid-fill, the download still completes and is committed", async () => {
  const released = gate();
  const blob = newBlob(4 * MIB, halfThen(released.promise));
  const only = streamingGet(url(docxy, blob));
  await only.atLeast(MIB);
  only.destroy();
  await waitFor(() => accessLines(docxy, blob) >= 1, "docxy to see the client leave");
  await Bun.sleep(200);
  released.open();
  const committed = await waitFor(() => isCached(docxy.cacheDir, blob.digest), "the commit", 5000).then(() => true, () => false);
  expect(committed).toBe(true);
  const next = await fetch(url(docxy, blob));
  expect(next.headers.get("x-cache")).toBe("HIT");
  expect(sha256(await next.arrayBuffer())).toBe(blob.digest);
  expect(upstreamGets(blob)).toBe(1);
}, 20_000);

test("an upstream cut mid-blob aborts the client and commits nothing; a good answer later is committed", async () => {
  const blob = newBlob(4 * MIB, async (reply, bytes) => {
    await reply.write(bytes.subarray(0, 1.5 * MIB));
    reply.cut();
  });
  const cut = await abortedGet(url(docxy, blob));
  expect(cut.aborted).toBe(true);
  expect(cut.received).toBeLessThan(blob.bytes.length);
  await waitFor(() => tempFiles(docxy.cacheDir).length === 0, "the temp file to go");
  expect(isCached(docxy.cacheDir, blob.digest)).toBe(false);

  blob.body = undefined; // the upstream recovers
  const cutGets = upstreamGets(blob); // 1, or 2 when the client's fetch itself retried the reset request
  const retry = await fetch(url(docxy, blob));
  expect(retry.headers.get("x-cache")).toBe("MISS");
  expect(sha256(await retry.arrayBuffer())).toBe(blob.digest);
  await waitFor(() => isCached(docxy.cacheDir, blob.digest), "the commit");
  const hit = await fetch(url(docxy, blob));
  expect(hit.headers.get("x-cache")).toBe("HIT");
  expect(sha256(await hit.arrayBuffer())).toBe(blob.digest);
  expect(upstreamGets(blob)).toBe(cutGets + 1); // one download for the retry, none for the hit
}, 20_000);

test("content that does not hash to its digest: the client never gets a complete body, nothing is committed", async () => {
  const blob = newBlob(3 * MIB, async (reply, bytes) => {
    const wrong = bytes.slice();
    wrong[wrong.length - 1]! ^= 0xff; // only the last byte differs
    await reply.write(wrong);
    reply.end();
  });
  const wrong = await abortedGet(url(docxy, blob));
  expect(wrong).toMatchObject({ aborted: true, cache: "MISS" });
  expect(wrong.received).toBeLessThan(blob.bytes.length);
  await waitFor(() => tempFiles(docxy.cacheDir).length === 0, "the temp file to go");
  expect(isCached(docxy.cacheDir, blob.digest)).toBe(false);
  expect(await abortedGet(url(docxy, blob))).toMatchObject({ aborted: true, cache: "MISS" }); // tried again, refused again
}, 20_000);

/** Sends the first `held` bytes, waits for `released`, then the rest (with its last byte flipped when `corrupt`). */
const holdAfter = (held: number, released: Promise<void>, corrupt = false) => async (reply: FakeReply, bytes: Uint8Array) => {
  await reply.write(bytes.subarray(0, held));
  await released;
  const rest = bytes.slice(held);
  if (corrupt) rest[rest.length - 1]! ^= 0xff;
  await reply.write(rest);
  reply.end();
};

/** Waits until the fill's temp file holds `bytes` (it is then on disk, past what is kept in memory). */
const tempHolds = (bytes: number) => () => tempFiles(docxy.cacheDir).some((name) => statSync(join(docxy.cacheDir, "tmp", name)).size >= bytes);

test("a follower far behind a running fill is sent the temp file as it grows: every byte, the last only once verified", async () => {
  // 16 MiB arrive, then the upstream holds: a follower starting at byte 0 is 16 MiB behind, past
  // the 8 MiB the fill keeps in memory, and is handed the temp file (cache/fill.ts handOver).
  const released = gate();
  const blob = newBlob(24 * MIB, holdAfter(16 * MIB, released.promise));
  const first = streamingGet(url(docxy, blob));
  await first.atLeast(16 * MIB);
  await waitFor(tempHolds(16 * MIB), "16 MiB in the temp file");
  const late = streamingGet(url(docxy, blob));
  expect((await late.head).headers["x-cache"]).toBe("COALESCED");
  await late.atLeast(16 * MIB); // from the file, while the upstream still holds the rest
  released.open();
  for (const client of [first, late]) expect(await client.done).toEqual({ digest: blob.digest, length: blob.bytes.length });
  expect(upstreamGets(blob)).toBe(1);
  await waitFor(() => isCached(docxy.cacheDir, blob.digest), "the commit");
}, 30_000);

test("a follower sent the temp file of a fill whose content is wrong never gets a complete body", async () => {
  const released = gate();
  const blob = newBlob(20 * MIB, holdAfter(16 * MIB, released.promise, true));
  const first = streamingGet(url(docxy, blob));
  await first.atLeast(16 * MIB);
  await waitFor(tempHolds(16 * MIB), "16 MiB in the temp file");
  const late = streamingGet(url(docxy, blob));
  await late.atLeast(16 * MIB);
  released.open();
  for (const client of [first, late]) expect((await client.done).length).toBeLessThan(blob.bytes.length);
  await waitFor(() => tempFiles(docxy.cacheDir).length === 0, "the temp file to go");
  expect(isCached(docxy.cacheDir, blob.digest)).toBe(false);
}, 30_000);

test("kill -9 mid-fill: after a restart on the same cache the temp file is gone and the blob is a correct MISS", async () => {
  const released = gate();
  const blob = newBlob(4 * MIB, halfThen(released.promise));
  const first = await startCachingDocxy(fake.toml);
  extra.push(first);
  const client = streamingGet(url(first, blob));
  expect((await client.head).headers["x-cache"]).toBe("MISS");
  await client.atLeast(MIB);
  expect(tempFiles(first.cacheDir)).toHaveLength(1);
  process.kill(first.pid, "SIGKILL");
  const cutOff = await client.done;
  expect(cutOff.length).toBeLessThan(blob.bytes.length);
  expect(tempFiles(first.cacheDir)).toHaveLength(1); // what the crash left behind
  released.open();

  blob.body = undefined;
  const restarted = await startCachingDocxy(fake.toml, { cacheDir: first.cacheDir });
  extra.push(restarted);
  expect(tempFiles(restarted.cacheDir)).toEqual([]);
  expect(isCached(restarted.cacheDir, blob.digest)).toBe(false);
  const response = await fetch(url(restarted, blob));
  expect(response.headers.get("x-cache")).toBe("MISS");
  expect(sha256(await response.arrayBuffer())).toBe(blob.digest);
  await waitFor(() => isCached(restarted.cacheDir, blob.digest), "the commit");
  expect(sha256(await Bun.file(cachedBlobPath(restarted.cacheDir, blob.digest)).bytes())).toBe(blob.digest);
}, 30_000);

/** Sends the first half, then nothing until docxy closes the connection (a stalled upstream); `closed` opens then. */
const stallAfterHalf = (stalled: () => void, closed: () => void) => async (reply: FakeReply, bytes: Uint8Array) => {
  await reply.write(bytes.subarray(0, bytes.length / 2));
  stalled();
  await reply.closed;
  closed();
};

async function notContinuingDocxy(): Promise<CachingDocxy> {
  const d = await startCachingDocxy(`${fake.toml}[cache]\ncontinue_on_disconnect = false\n`);
  extra.push(d);
  return d;
}

/** The upstream recovered: the next GET is a new download (a second upstream GET) with the right bytes. */
async function expectFreshDownload(d: CachingDocxy, blob: Blob): Promise<void> {
  blob.body = undefined;
  const next = await fetch(url(d, blob));
  expect({ cache: next.headers.get("x-cache"), digest: sha256(await next.arrayBuffer()), upstreamGets: upstreamGets(blob) }).toEqual({
    cache: "MISS",
    digest: blob.digest,
    upstreamGets: 2,
  });
  await waitFor(() => isCached(d.cacheDir, blob.digest), "the commit");
}

test("continue_on_disconnect = false: the only client leaving mid-fill ends a stalled download at once; the next GET starts afresh", async () => {
  const d = await notContinuingDocxy();
  const stalled = gate();
  const closed = gate();
  const blob = newBlob(4 * MIB, stallAfterHalf(stalled.open, closed.open));
  const only = streamingGet(url(d, blob));
  await stalled.promise;
  await only.atLeast(MIB);
  only.destroy();
  await closed.promise; // docxy closed the upstream connection although the upstream sent nothing more
  await waitFor(() => tempFiles(d.cacheDir).length === 0, "the temp file to go");
  expect(isCached(d.cacheDir, blob.digest)).toBe(false);
  await expectFreshDownload(d, blob);
}, 20_000);

test("continue_on_disconnect = false: a client gone before the response head ends the download it started", async () => {
  const d = await notContinuingDocxy();
  const stalled = gate();
  const closed = gate();
  const head = gate();
  const blob = newBlob(4 * MIB, stallAfterHalf(stalled.open, closed.open));
  blob.holdGet = head.promise;
  const only = streamingGet(url(d, blob));
  only.head.catch(() => undefined); // it never comes: the client leaves first
  await waitFor(() => upstreamGets(blob) >= 1, "the upstream GET");
  only.destroy();
  await waitFor(() => accessLines(d, blob) >= 1, "docxy to see the client leave");
  head.open(); // the upstream answers only now: nobody is left to read the body
  await stalled.promise;
  await closed.promise;
  await waitFor(() => tempFiles(d.cacheDir).length === 0, "the temp file to go");
  await expectFreshDownload(d, blob);
}, 20_000);

test("Range during an unverified fill: bytes=0-9 holds back its own last byte and is aborted when the digest does not match", async () => {
  const released = gate();
  const blob = newBlob(2 * MIB, async (reply, bytes) => {
    const wrong = bytes.slice();
    wrong[wrong.length - 1]! ^= 0xff;
    await reply.write(wrong.subarray(0, MIB));
    await released.promise;
    await reply.write(wrong.subarray(MIB));
    reply.end();
  });
  const first = streamingGet(url(docxy, blob));
  await first.atLeast(64 * 1024);
  const ranged = streamingGet(url(docxy, blob), { range: "bytes=0-9" });
  expect((await ranged.head).status).toBe(206);
  await ranged.atLeast(9);
  released.open();
  // Nine bytes were all it could get: the tenth waited for a verification that failed.
  expect((await ranged.done).length).toBe(9);
  expect((await first.done).length).toBeLessThan(blob.bytes.length);
  expect(isCached(docxy.cacheDir, blob.digest)).toBe(false);
}, 20_000);

test("Range during a fill of a correct blob completes with exactly its bytes once the blob is verified", async () => {
  const released = gate();
  const blob = newBlob(2 * MIB, halfThen(released.promise));
  const first = streamingGet(url(docxy, blob));
  await first.atLeast(64 * 1024);
  const ranged = streamingGet(url(docxy, blob), { range: "bytes=100-109" });
  const head = await ranged.head;
  expect({ status: head.status, range: head.headers["content-range"], length: head.headers["content-length"] }).toEqual({
    status: 206,
    range: `bytes 100-109/${blob.bytes.length}`,
    length: "10",
  });
  await ranged.atLeast(9);
  released.open();
  expect(await ranged.done).toEqual({ digest: sha256(blob.bytes.subarray(100, 110)), length: 10 });
  expect(await first.done).toEqual({ digest: blob.digest, length: blob.bytes.length });
}, 20_000);

test("in process: a reader's stream ends only once the blob is committed, though every byte came before", async () => {
  const { Fill } = await import("../../../src/cache/fill");
  const bytes = new Uint8Array(100_000).fill(7);
  const written: Uint8Array[] = [];
  let commitStarted!: () => void;
  const committing = new Promise<void>((resolve) => (commitStarted = resolve));
  let finishCommit!: () => void;
  const committed = new Promise<void>((resolve) => (finishCommit = resolve));
  const fill = new Fill({
    digest: sha256(bytes),
    size: bytes.length,
    body: new Response(bytes).body!,
    temp: {
      write: async (chunk) => void written.push(chunk.slice()),
      read: async () => new Uint8Array(0),
      commit: async () => {
        commitStarted();
        await committed;
      },
      abort: async () => undefined,
    },
    storage: { open: async () => undefined, begin: async () => { throw new Error("unused"); }, delete: async () => undefined, list: async function* () {} },
    continueWithoutReaders: true,
    onSettled: () => undefined,
  });
  const reader = fill.read(0, bytes.length - 1).getReader();
  void fill.start();
  let received = 0;
  let ended = false;
  const reading = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      received += value.length;
    }
    ended = true;
  })();
  await committing;
  await waitFor(() => received === bytes.length, "every byte delivered while the commit is pending");
  expect(ended).toBe(false);
  finishCommit();
  await reading;
  expect(ended).toBe(true);
  expect(fill.state).toBe("done");
});
