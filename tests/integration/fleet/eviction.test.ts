/**
 * Eviction of the shared bucket through the binary (issue 16): two docxy
 * nodes on one real Swift bucket and one real redis-server, with a max_size
 * that holds one of the test's blobs and not two. A blob a client of node B
 * is still reading survives the eviction node A runs after its next commit
 * (the blob A just stored goes instead, the next oldest); once that read ended, A's next eviction deletes it from the bucket, for
 * both nodes: B then gets it from the upstream again, bytes intact.
 * Ledger and reader protocol in process: tests/fleet/fleet-eviction.test.ts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { sha256, waitFor } from "../../support/cache/harness";
import type { Docxy } from "../../support/docxy-process";
import { getBlob, startNode } from "../../support/fleet";
import { pushBlob } from "../../support/push";
import { startRedis, type Redis } from "../../support/redis";
import { startSwift, type Swift } from "../../support/swift";
import { registryToml, startUpstream, type Upstream } from "../../support/upstream";

const BUCKET = "docxy-eviction";
/** Larger than what the sockets between docxy and the client buffer: a paused client keeps the read open. */
const SIZE = 24 * 1024 * 1024;
const blobs = ["x", "y", "z"].map(() => {
  const data = randomBytes(SIZE);
  return { digest: sha256(data), size: SIZE, data };
});
const [x, y, z] = blobs as [(typeof blobs)[0], (typeof blobs)[0], (typeof blobs)[0]];

let upstream: Upstream;
let swift: Swift;
let redis: Redis;
let bucket: Bun.S3Client;
let a: Docxy;
let b: Docxy;

beforeAll(async () => {
  [upstream, swift, redis] = await Promise.all([startUpstream(), startSwift(), startRedis()]);
  await swift.createBucket(BUCKET);
  const { endpoint, accessKeyId, secretAccessKey, region } = swift;
  bucket = new Bun.S3Client({ endpoint, accessKeyId, secretAccessKey, region, bucket: BUCKET });
  const push = { authorization: `Bearer ${await upstream.token("repository:acme/big:pull,push", "alice")}` };
  for (const blob of blobs) await pushBlob(upstream.registryUrl, "acme/big", blob, push);
  const cache =
    `[cache]\nstorage = "s3"\nmax_size = "${(SIZE * 3) / 2}B"\n[cache.s3]\nendpoint = "${endpoint}"\nbucket = "${BUCKET}"\n` +
    `region = "${region}"\naccess_key_id = "${accessKeyId}"\nsecret_access_key = "${secretAccessKey}"\n`;
  [a, b] = (await Promise.all([0, 1].map(() => startNode(registryToml(upstream) + cache, redis.url)))) as [Docxy, Docxy];
}, 120_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await Promise.all([upstream?.stop(), swift?.stop(), redis?.stop()]);
});

const inBucket = (digest: string) => bucket.file(`blobs/sha256/${digest.slice(7)}`).exists();
const cdnGets = (digest: string) => upstream.cdnLog.filter((r) => r.method === "GET" && r.path.endsWith(`/${digest.slice(7)}/data`)).length;

async function fetchAll(node: Docxy, digest: string): Promise<{ cache: string | null; digest: string }> {
  const response = await getBlob(node, "acme/big", digest);
  expect(response.status).toBe(200);
  return { cache: response.headers.get("x-cache"), digest: sha256(new Uint8Array(await response.arrayBuffer())) };
}

/**
 * The client has every byte when its Content-Length is met, but a MISS's response ends only once
 * the blob is committed and the eviction it starts is under way (cache/fill.ts): its access-log
 * line, written at that end, is what says so. Without this wait a busy machine read the bucket
 * before the commit and took a blob still uploading for one evicted.
 */
function filled(node: Docxy, digest: string): Promise<void> {
  const line = (entry: string) => entry.includes(`/blobs/${digest}"`) && entry.includes('"cache":"MISS"') && entry.includes('"complete":true');
  return waitFor(() => node.log().split("\n").some(line), `the fill of ${digest} ended`);
}

test("eviction on one node never deletes what a client of another node reads, then removes it for both", async () => {
  expect(await fetchAll(a, x.digest)).toEqual({ cache: "MISS", digest: x.digest });
  await filled(a, x.digest);
  expect(await inBucket(x.digest)).toBe(true);

  // B's client reads x from the bucket and pauses after its first chunk.
  const reading = await getBlob(b, "acme/big", x.digest);
  expect(reading.headers.get("x-cache")).toBe("HIT");
  const reader = reading.body!.getReader();
  const first = await reader.read();
  expect(first.done).toBe(false);

  // A commits y: the fleet is over max_size. x is the oldest but read on B: y goes instead.
  expect(await fetchAll(a, y.digest)).toEqual({ cache: "MISS", digest: y.digest });
  await filled(a, y.digest);
  await waitFor(async () => !(await inBucket(x.digest)) || !(await inBucket(y.digest)), "A's eviction");
  expect(await inBucket(x.digest)).toBe(true);
  expect(await inBucket(y.digest)).toBe(false);

  const hasher = new Bun.CryptoHasher("sha256").update(first.value!);
  let length = first.value!.length;
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
    hasher.update(chunk.value);
    length += chunk.value.length;
  }
  expect({ digest: `sha256:${hasher.digest("hex")}`, length }).toEqual({ digest: x.digest, length: SIZE });

  // A commits z: now x, read by no one, goes from the bucket.
  expect(await fetchAll(a, z.digest)).toEqual({ cache: "MISS", digest: z.digest });
  await filled(a, z.digest);
  await waitFor(async () => !(await inBucket(x.digest)), "x evicted from the bucket");
  expect(await inBucket(z.digest)).toBe(true);

  // B still indexed x: it finds the object gone and gets it from the upstream again, intact.
  expect(await fetchAll(b, x.digest)).toEqual({ cache: "MISS", digest: x.digest });
  expect(cdnGets(x.digest)).toBe(2);
}, 120_000);
