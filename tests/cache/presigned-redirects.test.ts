/**
 * Presigned redirects (cache/presigned-redirects.ts), in process, against the real test registry
 * and a real Swift (tests/support/swift.ts): with `[cache.s3] presigned_redirect`, a GET of a blob
 * read from the bucket answers 307 to a URL of its object that Swift serves, after the same access
 * checks as any hit; a HEAD, a refused client and a hot-tier copy are answered by the node, as is
 * every hit with the redirect off. Through the binary with skopeo:
 * tests/integration/fleet/presigned-redirects.test.ts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PresignedRedirects } from "../../src/cache/presigned-redirects";
import { S3Storage } from "../../src/cache/s3-storage";
import { TieredStorage } from "../../src/cache/tiered-storage";
import { digestOf, inProcessCache, type InProcessCache } from "../support/cache/in-process";
import { sha256 } from "../support/layers";
import { startSwift, type Swift } from "../support/swift";
import { startUpstream, type Upstream } from "../support/upstream";

const BUCKET = "presigned";
let upstream: Upstream;
let swift: Swift;
const scratch = mkdtempSync(join(tmpdir(), "docxy-presigned-"));
const caches: InProcessCache[] = [];
/** The hot tier of the node that has one. */
let tier: TieredStorage | undefined;

async function node(name: string, options: { presigned: boolean; hotTier?: boolean }): Promise<InProcessCache> {
  const { endpoint, accessKeyId, secretAccessKey, region } = swift;
  const s3 = await S3Storage.open({ endpoint, accessKeyId, secretAccessKey, region, bucket: BUCKET, prefix: "docxy", spoolDir: join(scratch, name) });
  const cache = await inProcessCache(upstream, {
    storage: async () => {
      if (!options.hotTier) return s3;
      tier = await TieredStorage.open({ bucket: s3, dir: join(scratch, `${name}-hot`), maxBytes: 2 ** 30, inUse: () => false });
      return tier;
    },
    presigned: options.presigned ? new PresignedRedirects(s3, 60_000) : undefined,
  });
  caches.push(cache);
  return cache;
}

beforeAll(async () => {
  [upstream, swift] = await Promise.all([startUpstream({ onlyThroughProxy: true }), startSwift()]);
  await swift.createBucket(BUCKET);
}, 120_000);
afterAll(async () => {
  for (const cache of caches) cache.close();
  await Promise.all([swift?.stop(), upstream?.stop()]);
  rmSync(scratch, { recursive: true, force: true });
});

const get = (cache: InProcessCache, repository: string, digest: string, init: RequestInit = {}) =>
  cache.front.answer(cache.request("blobs", repository, digest, init));
const objectPath = (digest: string) => `/${BUCKET}/docxy/blobs/sha256/${digest.slice("sha256:".length)}`;

test("a GET of a cached blob answers 307 to a presigned URL that Swift serves with the blob's exact bytes; a HEAD stays here", async () => {
  const redirecting = await node("redirecting", { presigned: true });
  const layer = upstream.images.app.manifests[0]!.layers[0]!;
  // The miss is streamed through the node as it fills: there is no object to sign yet.
  const miss = await get(redirecting, "acme/app", layer.digest);
  expect(miss.status).toBe(200);
  expect(miss.headers.get("x-cache")).toBe("MISS");
  expect(await digestOf(miss)).toEqual({ digest: layer.digest, length: layer.size });

  const hit = await get(redirecting, "acme/app", layer.digest);
  expect(hit.status).toBe(307);
  expect(hit.headers.get("x-cache")).toBe("HIT");
  expect(hit.headers.get("content-length")).toBe("0");
  expect(hit.headers.get("docker-content-digest")).toBe(layer.digest);
  expect(redirecting.blobs.inUse(layer.digest)).toBe(false); // nothing streams through the node: no reader is left registered
  const location = new URL(hit.headers.get("location")!);
  expect(location.origin).toBe(swift.endpoint);
  expect(location.pathname).toBe(objectPath(layer.digest));
  expect(location.searchParams.get("X-Amz-Credential")).toStartWith(`${swift.accessKeyId}/`);

  swift.clearRequests();
  const fromBucket = await fetch(location); // no credentials of any kind: the URL is the credential
  expect(fromBucket.status).toBe(200);
  expect(sha256(new Uint8Array(await fromBucket.arrayBuffer()))).toBe(layer.digest);
  expect((await swift.requests()).map((r) => `${r.method} ${r.path.split("?")[0]} ${r.status}`)).toEqual([`GET ${objectPath(layer.digest)} 200`]);

  // Docker resumes a layer with Range on the redirected URL: the bucket answers 206.
  const ranged = await get(redirecting, "acme/app", layer.digest, { headers: { range: "bytes=10-" } });
  expect(ranged.status).toBe(307);
  const resumed = await fetch(ranged.headers.get("location")!, { headers: { range: "bytes=10-" } });
  expect(resumed.status).toBe(206);
  expect((await resumed.arrayBuffer()).byteLength).toBe(layer.size - 10);

  const head = await get(redirecting, "acme/app", layer.digest, { method: "HEAD" });
  expect(head.status).toBe(200);
  expect(head.headers.get("location")).toBeNull();
  expect(head.headers.get("content-length")).toBe(String(layer.size));
}, 60_000);

test("a client refused by the access checks gets no URL; the reader with a token gets one", async () => {
  const redirecting = await node("gate", { presigned: true });
  const layer = upstream.images.secret.manifests[0]!.layers[0]!;
  const authorization = `Bearer ${await upstream.token("private/secret", "alice")}`;
  const filled = await get(redirecting, "private/secret", layer.digest, { headers: { authorization } });
  expect(filled.headers.get("x-cache")).toBe("MISS");
  expect(await digestOf(filled)).toEqual({ digest: layer.digest, length: layer.size });

  for (const repository of ["private/secret", "acme/app"]) {
    const refused = await get(redirecting, repository, layer.digest);
    expect([401, 404]).toContain(refused.status);
    expect(refused.headers.get("location")).toBeNull();
    expect(refused.headers.get("docker-content-digest")).toBeNull();
  }
  const allowed = await get(redirecting, "private/secret", layer.digest, { headers: { authorization } });
  expect(allowed.status).toBe(307);
  expect(sha256(new Uint8Array(await (await fetch(allowed.headers.get("location")!)).arrayBuffer()))).toBe(layer.digest);
}, 60_000);

test("with the redirect off, a hit from the bucket streams through the node (200), as by default", async () => {
  const streaming = await node("streaming", { presigned: false });
  const layer = upstream.images.app.manifests[0]!.layers[0]!; // in the bucket since the first test
  const hit = await get(streaming, "acme/app", layer.digest);
  expect(hit.status).toBe(200);
  expect(hit.headers.get("x-cache")).toBe("HIT");
  expect(hit.headers.get("location")).toBeNull();
  expect(await digestOf(hit)).toEqual({ digest: layer.digest, length: layer.size });
}, 60_000);

test("a blob with a copy in the node's hot tier is served from that local file, not redirected", async () => {
  const tiered = await node("tiered", { presigned: true, hotTier: true });
  const layer = upstream.images.app.manifests[0]!.layers[1]!;
  const miss = await get(tiered, "acme/app", layer.digest);
  expect(miss.headers.get("x-cache")).toBe("MISS"); // the fill keeps a local copy beside the object
  expect(await digestOf(miss)).toEqual({ digest: layer.digest, length: layer.size });
  await tier!.copied(); // the copy commits in the background, after the object
  const hit = await get(tiered, "acme/app", layer.digest);
  expect(hit.status).toBe(200);
  expect(hit.headers.get("x-cache")).toBe("HIT");
  expect(await digestOf(hit)).toEqual({ digest: layer.digest, length: layer.size });
}, 60_000);
