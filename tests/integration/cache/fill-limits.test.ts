/**
 * The fill limits through the binary (in process: tests/cache/fill-limits.test.ts),
 * against a fake upstream whose blobs stall half-way (so fills stay in
 * progress while their clients are long gone), with client addresses given
 * by X-Forwarded-For from a trusted proxy.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { gate, startFakeRegistry, type FakeRegistry } from "../../support/cache/fake-registry";
import { isCached, sha256, startCachingDocxy, streamingGet, waitFor, type CachingDocxy } from "../../support/cache/harness";

const MIB = 1024 * 1024;

interface Blob {
  bytes: Uint8Array<ArrayBuffer>;
  digest: string;
}
const blobs = new Map<string, Blob>();
let released = gate();
function newBlob(size: number): Blob {
  const bytes = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) crypto.getRandomValues(bytes.subarray(at, Math.min(size, at + 65536)));
  const blob = { bytes, digest: sha256(bytes) };
  blobs.set(blob.digest, blob);
  return blob;
}

let fake: FakeRegistry;
const started: CachingDocxy[] = [];
beforeAll(async () => {
  // Every blob: the first half, then the rest once the test opens `released`.
  fake = await startFakeRegistry(async (request, reply) => {
    const blob = blobs.get(/\/blobs\/(sha256:[0-9a-f]{64})$/.exec(request.path)?.[1] ?? "");
    if (!blob) return reply.send(404, { "content-type": "application/json" }, '{"errors":[{"code":"BLOB_UNKNOWN","message":"unknown","detail":null}]}');
    const headers = { "content-type": "application/octet-stream", "content-length": String(blob.bytes.length), "docker-content-digest": blob.digest };
    if (request.method === "HEAD") return reply.send(200, headers);
    reply.head(200, headers);
    await reply.write(blob.bytes.subarray(0, blob.bytes.length / 2));
    await released.promise;
    await reply.write(blob.bytes.subarray(blob.bytes.length / 2));
    reply.end();
  });
});
afterAll(async () => {
  released.open();
  await Promise.all(started.map((d) => d.stop()));
  await fake?.stop();
});

async function docxyWith(cache: string): Promise<CachingDocxy> {
  released = gate();
  const d = await startCachingDocxy(`${fake.toml}[access]\ntrusted_proxies = ["127.0.0.1"]\n[cache]\n${cache}`);
  started.push(d);
  return d;
}

const upstreamGets = (blob: Blob) => fake.log.filter((r) => r.method === "GET" && r.path.endsWith(blob.digest)).length;
const blobUrl = (d: CachingDocxy, blob: Blob) => `${d.url}/v2/acme/limits/blobs/${blob.digest}`;

/** A GET from `client` that is abandoned as soon as its head is in: its fill (if any) runs on without it. */
async function abandonedGet(d: CachingDocxy, blob: Blob, client: string) {
  const get = streamingGet(blobUrl(d, blob), { "x-forwarded-for": client });
  const head = await get.head;
  get.destroy();
  return { status: head.status, cache: head.headers["x-cache"] };
}

async function refusedGet(d: CachingDocxy, blob: Blob, client: string) {
  const response = await fetch(blobUrl(d, blob), { headers: { "x-forwarded-for": client } });
  const body = (await response.json()) as { errors: { code: string }[] };
  return { status: response.status, code: body.errors[0]?.code, retryAfter: response.headers.get("retry-after") };
}

async function refusedMetric(d: CachingDocxy): Promise<Record<string, number>> {
  const text = await (await fetch(`${d.url}/metrics`)).text();
  return Object.fromEntries([...text.matchAll(/^docxy_cache_fills_refused_total\{reason="(\w+)"\} (\d+)$/gm)].map((m) => [m[1]!, Number(m[2])]));
}

/** Fills end (and free their slots) just after their commit: wait for docxy to say none is left. */
async function noFillInProgress(d: CachingDocxy): Promise<void> {
  const inProgress = async () => Number(/^docxy_cache_fills_in_progress (\d+)$/m.exec(await (await fetch(`${d.url}/metrics`)).text())?.[1]);
  await waitFor(async () => (await inProgress()) === 0, "the fills to end");
}

async function expectServed(d: CachingDocxy, blob: Blob, client: string): Promise<void> {
  const response = await fetch(blobUrl(d, blob), { headers: { "x-forwarded-for": client } });
  expect({ status: response.status, cache: response.headers.get("x-cache"), digest: sha256(await response.arrayBuffer()) }).toEqual({
    status: 200,
    cache: "MISS",
    digest: blob.digest,
  });
}

test("through docxy: abandoned fills still count for the address that started them (429), then for everyone (503); joining is free", async () => {
  const d = await docxyWith("max_fills = 3\nmax_fills_per_client = 2\n");
  const [one, two, three, four] = [newBlob(2 * MIB), newBlob(2 * MIB), newBlob(2 * MIB), newBlob(2 * MIB)];
  expect(await abandonedGet(d, one!, "10.0.0.1")).toEqual({ status: 200, cache: "MISS" });
  expect(await abandonedGet(d, two!, "10.0.0.1")).toEqual({ status: 200, cache: "MISS" });
  expect(await refusedGet(d, three!, "10.0.0.1")).toEqual({ status: 429, code: "TOOMANYREQUESTS", retryAfter: "10" });
  expect(await abandonedGet(d, one!, "10.0.0.1")).toEqual({ status: 200, cache: "COALESCED" });
  expect(await abandonedGet(d, three!, "10.0.0.2")).toEqual({ status: 200, cache: "MISS" });
  expect(await refusedGet(d, four!, "10.0.0.3")).toEqual({ status: 503, code: "UNAVAILABLE", retryAfter: "10" });
  // A refused fill cost the upstream nothing.
  expect([one, two, three, four].map((b) => upstreamGets(b!))).toEqual([1, 1, 1, 0]);
  expect(await refusedMetric(d)).toEqual({ client: 1, fills: 1, bytes: 0 });

  released.open(); // the fills end (and are committed, their clients long gone): their slots are free again
  await noFillInProgress(d);
  for (const b of [one, two, three]) expect(isCached(d.cacheDir, b!.digest)).toBe(true);
  await expectServed(d, four!, "10.0.0.1");
}, 30_000);

test("through docxy: temp bytes in flight past max_fill_bytes are refused with 503; a blob alone may exceed it", async () => {
  const d = await docxyWith('max_fill_bytes = "3MiB"\n');
  const [first, second, huge] = [newBlob(2 * MIB), newBlob(2 * MIB), newBlob(4 * MIB)];
  expect(await abandonedGet(d, first!, "10.0.0.1")).toEqual({ status: 200, cache: "MISS" });
  expect(await refusedGet(d, second!, "10.0.0.2")).toEqual({ status: 503, code: "UNAVAILABLE", retryAfter: "10" });
  expect(await refusedMetric(d)).toEqual({ client: 0, fills: 0, bytes: 1 });
  released.open();
  await noFillInProgress(d);
  await expectServed(d, second!, "10.0.0.2");
  await noFillInProgress(d);
  await expectServed(d, huge!, "10.0.0.2");
}, 30_000);
