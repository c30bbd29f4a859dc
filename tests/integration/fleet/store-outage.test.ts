/**
 * The fleet's bucket going down under load: three docxy binaries sharing one real Swift bucket
 * (tests/support/swift.ts) and one real Redis, in front of the real test registry whose CDN logs
 * every GET. Swift's proxy is killed while the layers of an image are pulled through the three
 * nodes at once: every client gets either the exact bytes (Content-Length, length and sha256 as
 * the digest says) or a registry JSON error, never a short body that looks complete, and each
 * node's /health then names the storage trouble. With the proxy back, a pull is committed to the
 * bucket again, and another node serves it from there as a HIT with no CDN GET.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { S3Client } from "bun";
import { readFully, sha256, waitFor } from "../../support/cache/harness";
import type { Docxy } from "../../support/docxy-process";
import { getBlob, health, startNode } from "../../support/fleet";
import { pushBlob } from "../../support/push";
import { startRedis, type Redis } from "../../support/redis";
import { startSwift, type Swift } from "../../support/swift";
import { registryToml, startUpstream, type Upstream } from "../../support/upstream";

const REPO = "acme/outage";
const BUCKET = "docxy-outage";
const blob = (size: number) => {
  const data = randomBytes(size);
  return { data, digest: sha256(data) };
};
type Blob = ReturnType<typeof blob>;
/** Big enough that the uploads of their multipart parts are still running when the proxy dies. */
const LAYERS = [0, 1, 2, 3].map(() => blob(16 * 1024 * 1024));
/** One per node, pulled cold while the bucket is down, so each node's store meets the outage. */
const PROBES = [0, 1, 2].map(() => blob(64 * 1024));
/** Pulled once the bucket is back. */
const AFTER = blob(2 * 1024 * 1024);

let upstream: Upstream;
let redis: Redis;
let swift: Swift;
let bucket: S3Client;
let nodes: Docxy[] = [];

beforeAll(async () => {
  [upstream, redis, swift] = await Promise.all([startUpstream(), startRedis(), startSwift()]);
  await swift.createBucket(BUCKET);
  const { endpoint, region, accessKeyId, secretAccessKey } = swift;
  bucket = new S3Client({ endpoint, region, accessKeyId, secretAccessKey, bucket: BUCKET });
  const push = { authorization: `Bearer ${await upstream.token(`repository:${REPO}:pull,push`, "alice")}` };
  for (const b of [...LAYERS, ...PROBES, AFTER]) await pushBlob(upstream.registryUrl, REPO, { digest: b.digest, size: b.data.length, data: b.data }, push);
  nodes = await Promise.all([0, 1, 2].map(() => startNode(registryToml(upstream), redis.url, { storage: { swift, bucket: BUCKET } })));
}, 120_000);

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
  await Promise.all([upstream?.stop(), redis?.stop(), swift?.stop()]);
});

const cdnGets = (digest: string) => upstream.cdnLog.filter((r) => r.method === "GET" && r.path.endsWith(`/${digest.slice(7)}/data`)).length;
const inBucket = (digest: string) => bucket.file(`blobs/sha256/${digest.slice(7)}`).exists();

/**
 * Whatever happened to the store: a 200 is exactly the blob, or a connection cut short of its
 * Content-Length after a prefix of it (a node reading a committed object from the bucket when
 * the proxy died has no other source for the rest: the client sees an incomplete body and
 * retries, as docker and containerd do); anything else a registry error.
 */
async function expectExactOrRegistryError(response: Response, expected: Blob): Promise<"bytes" | "cut" | "error"> {
  const body = await readFully(response);
  if (response.status === 200) {
    expect(response.headers.get("content-length")).toBe(String(expected.data.length));
    if (body.error) {
      expect(body.bytes.length).toBeLessThan(expected.data.length);
      expect(Buffer.from(body.bytes).equals(expected.data.subarray(0, body.bytes.length))).toBe(true);
      return "cut";
    }
    expect(body.bytes.length).toBe(expected.data.length);
    expect(sha256(body.bytes)).toBe(expected.digest);
    return "bytes";
  }
  expect(response.status).toBeGreaterThanOrEqual(400);
  const json = JSON.parse(new TextDecoder().decode(body.bytes)) as { errors: { code: string }[] };
  expect(json.errors[0]!.code).toBeString();
  return "error";
}

test("Swift's proxy killed during pulls through three nodes: exact bytes or a registry error for every client; /health says failing", async () => {
  const pulls = LAYERS.flatMap((layer) => nodes.map((node) => ({ layer, response: getBlob(node, REPO, layer.digest) })));
  await Promise.race(pulls.map((p) => p.response)); // a fill has begun: its upload to the bucket is under way
  await swift.killProxy();
  const outcomes = await Promise.all(pulls.map(async ({ layer, response }) => expectExactOrRegistryError(await response, layer)));
  expect(outcomes).toHaveLength(LAYERS.length * nodes.length);

  // Each node asks the bucket for a blob it never saw, then downloads it: the bytes still come.
  for (const [i, node] of nodes.entries()) expect(await expectExactOrRegistryError(await getBlob(node, REPO, PROBES[i]!.digest), PROBES[i]!)).toBe("bytes");
  await waitFor(async () => (await Promise.all(nodes.map(health))).every((h) => h.cache?.state === "failing"), "every node's /health saying its storage fails");
  for (const report of await Promise.all(nodes.map(health))) {
    expect(report.status).toBe("degraded");
    expect(report.cache).toMatchObject({ storage: "s3", state: "failing" });
    expect(report.cache?.reason).toContain(BUCKET);
  }
  for (const node of nodes) expect(node.log()).not.toContain(swift.secretAccessKey);
}, 120_000);

test("Swift's proxy back: a pull is committed to the bucket again, and another node serves it as a HIT with no CDN GET", async () => {
  await swift.restartProxy();
  const [first, second] = nodes as [Docxy, Docxy];
  // A node's S3 client may still hold connections to the dead proxy: its first request can fail.
  await waitFor(
    async () => {
      await expectExactOrRegistryError(await getBlob(first, REPO, AFTER.digest), AFTER);
      return inBucket(AFTER.digest);
    },
    "a pull committed to the bucket",
    30_000,
  );
  expect(await health(first)).toMatchObject({ cache: { storage: "s3", state: "up" } });
  const downloads = cdnGets(AFTER.digest);
  expect(downloads).toBeGreaterThanOrEqual(1);
  const hit = await getBlob(second, REPO, AFTER.digest);
  expect(hit.headers.get("x-cache")).toBe("HIT");
  expect(await expectExactOrRegistryError(hit, AFTER)).toBe("bytes");
  expect(cdnGets(AFTER.digest)).toBe(downloads);
  expect(await health(second)).toMatchObject({ cache: { storage: "s3", state: "up" } });
}, 90_000);
