/**
 * Blob answers the cache cannot keep (cache/uncacheable.ts), through the
 * cache front in process, from a fake upstream that answers without a
 * Content-Length (chunked): nothing is committed, and whatever Range the
 * client sent is answered from the one upstream request the fill made.
 * The same with a store that refuses writes, against the real registry:
 * tests/cache/blob-cache.test.ts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { notFound, sendChunked, startFakeRegistry, type FakeRegistry } from "../support/cache/fake-registry";
import { inProcessCache, type InProcessCache } from "../support/cache/in-process";

const bytes = Uint8Array.from({ length: 200_000 }, (_, i) => (i * 7) % 251);
const DIGEST = `sha256:${new Bun.CryptoHasher("sha256").update(bytes).digest("hex")}`;
const MISSING = "sha256:" + "9".repeat(64);
/** Answered with `bytes`, which are not its content. */
const LYING = "sha256:" + "7".repeat(64);

let fake: FakeRegistry;
let cache: InProcessCache;
beforeAll(async () => {
  fake = await startFakeRegistry((request, reply) => {
    if (request.path.endsWith(`/blobs/${LYING}`)) return void sendChunked(reply, 200, { "content-type": "application/octet-stream" }, bytes);
    if (request.path.endsWith(`/blobs/${DIGEST}`)) return void sendChunked(reply, 200, { "content-type": "application/octet-stream" }, bytes);
    reply.send(404, { "content-type": "application/json" }, notFound("BLOB_UNKNOWN"));
  });
  cache = await inProcessCache({ registryUrl: fake.url, realm: `${fake.url}/token`, service: "fake" });
});
afterAll(async () => {
  cache?.close();
  await fake?.stop();
});

const upstreamGets = (digest: string) => fake.log.filter((r) => r.method === "GET" && r.path.endsWith(`/blobs/${digest}`)).length;
const get = (digest: string, headers: Record<string, string> = {}) => cache.front.answer(cache.request("blobs", "acme/app", digest, { headers }));

test("a bounded Range on an answer without a length is a 206 cut from the one upstream request, of unknown total", async () => {
  const before = upstreamGets(DIGEST);
  const response = await get(DIGEST, { range: "bytes=5-20" });
  expect(response.status).toBe(206);
  expect(response.headers.get("content-range")).toBe("bytes 5-20/*");
  expect(response.headers.get("content-length")).toBe("16");
  expect(new Uint8Array(await response.arrayBuffer())).toEqual(bytes.subarray(5, 21));
  expect(upstreamGets(DIGEST) - before).toBe(1);
  expect(fake.log.at(-1)?.headers.range).toBeUndefined(); // the fill asked for the whole blob
});

test("without a Range the whole blob is relayed as a 200 from that one request, and nothing is stored", async () => {
  const before = upstreamGets(DIGEST);
  const response = await get(DIGEST);
  expect(response.status).toBe(200);
  expect(response.headers.get("x-cache")).toBeNull();
  expect(new Uint8Array(await response.arrayBuffer())).toEqual(bytes);
  expect(upstreamGets(DIGEST) - before).toBe(1);
  expect(cache.storage.begins).toBe(0);
  expect(cache.index.getBlob(DIGEST)).toBeUndefined();
  expect(cache.remote.calls.filter((call) => call.kind === "forward")).toEqual([]);
});

test("a whole blob relayed so is verified all the same: wrong bytes cut the client off before their end", async () => {
  const response = await get(LYING);
  expect(response.status).toBe(200);
  const reader = response.body!.getReader();
  let received = 0;
  const ended = await (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return "done";
      received += value.length;
    }
  })().catch((error: Error) => error.message);
  expect(ended).toStartWith("digest mismatch");
  expect(received).toBeLessThan(bytes.length);
  expect(cache.index.getBlob(LYING)).toBeUndefined();
});

test("a Range that needs the total (Docker's resume, bytes=N-) is asked of the upstream again with the client's Range", async () => {
  for (const range of ["bytes=100-", "bytes=-10"]) {
    const before = upstreamGets(DIGEST);
    const forwards = cache.remote.calls.filter((call) => call.kind === "forward").length;
    const response = await get(DIGEST, { range });
    // The fake upstream ignores Range: its whole 200 is relayed as it came.
    expect(response.status).toBe(200);
    expect(new Uint8Array(await response.arrayBuffer())).toEqual(bytes);
    expect(upstreamGets(DIGEST) - before).toBe(2);
    expect(fake.log.at(-1)?.headers.range).toBe(range);
    expect(cache.remote.calls.filter((call) => call.kind === "forward").length - forwards).toBe(1);
  }
});

test("a range past the end of a body without a length cuts the client off instead of sending a short 206", async () => {
  const response = await get(DIGEST, { range: `bytes=${bytes.length - 10}-${bytes.length + 10}` });
  expect(response.status).toBe(206);
  await expect(response.arrayBuffer()).rejects.toThrow("before the range");
});

test("an upstream error is relayed from the fill's request, with the client's Range or not", async () => {
  for (const headers of [{}, { range: "bytes=0-9" }] as Record<string, string>[]) {
    const before = upstreamGets(MISSING);
    const response = await get(MISSING, headers);
    expect(response.status).toBe(404);
    expect(((await response.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("BLOB_UNKNOWN");
    expect(upstreamGets(MISSING) - before).toBe(1);
  }
});
