/**
 * `[cache.s3] presigned_redirect = true` through the binary, against the real test registry and a
 * real Swift (tests/support/swift.ts): skopeo copies an image through a node once (cold: streamed
 * by the node), then again, and the second time it fetches the layers from the bucket itself,
 * following the node's 307 to a presigned URL. Neither the URL's signature nor the secret reaches
 * the node's log. In process: tests/cache/presigned-redirects.test.ts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { newCacheDir, registryToml, startCachingDocxy, type CachingDocxy } from "../../support/cache/harness";
import { skopeoCopyOk } from "../../support/skopeo";
import { startSwift, type Swift } from "../../support/swift";
import { startUpstream, type Upstream } from "../../support/upstream";

const BUCKET = "docxy-presigned";
let upstream: Upstream;
let swift: Swift;
let node: CachingDocxy | undefined;

beforeAll(async () => {
  [upstream, swift] = await Promise.all([startUpstream({ onlyThroughProxy: true }), startSwift()]);
  await swift.createBucket(BUCKET);
}, 120_000);
afterAll(async () => {
  await node?.stop();
  await Promise.all([swift?.stop(), upstream?.stop()]);
});

test("a pull of cached layers follows the node's redirect to the bucket: skopeo GETs the layer objects from Swift", async () => {
  const toml = `${registryToml(upstream)}[cache]\nstorage = "s3"\n[cache.s3]\nendpoint = "${swift.endpoint}"\nbucket = "${BUCKET}"\nregion = "${swift.region}"\nprefix = "fleet"\npresigned_redirect = true\npresigned_ttl = "2m"\n`;
  node = await startCachingDocxy(toml, {
    cacheDir: newCacheDir(),
    env: { AWS_ACCESS_KEY_ID: swift.accessKeyId, AWS_SECRET_ACCESS_KEY: swift.secretAccessKey },
  });
  const host = new URL(node.url).host;
  const manifest = upstream.images.app.manifests[0]!;
  const layers = manifest.layers.map((l) => l.digest);
  const objectOf = (digest: string) => `/${BUCKET}/fleet/blobs/sha256/${digest.slice("sha256:".length)}`;

  const cold = await skopeoCopyOk(host, "acme/app:v1");
  for (const digest of [manifest.config.digest, ...layers]) expect(cold[digest.slice(7)]).toBe(digest); // skopeo's files, hashed

  swift.clearRequests();
  const warm = await skopeoCopyOk(host, "acme/app:v1");
  expect(warm).toEqual(cold);
  // The node itself only HEADs an object to find it; a GET of a whole layer object is the client's, by the URL it was sent to.
  const gets = (await swift.requests()).filter((r) => r.method === "GET" && r.status === 200);
  for (const digest of layers) expect(gets.map((r) => r.path.split("?")[0])).toContain(objectOf(digest));
  expect(gets.filter((r) => r.path.includes("X-Amz-Signature=")).length).toBeGreaterThanOrEqual(layers.length);

  // The access log shows each warm blob GET as a redirect (the config blob too), and never the Location.
  const redirected = node.log().split("\n").filter((line) => line.includes('"status":307') && line.includes('"cache":"HIT"'));
  expect(redirected.length).toBe(layers.length + 1);
  expect(node.log()).not.toContain("X-Amz-Signature");
  expect(node.log()).not.toContain(swift.secretAccessKey);
}, 180_000);
