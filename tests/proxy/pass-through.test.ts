/**
 * The pass-through in process (proxy/pass-through.ts) against the real test
 * registry: a read forwarded as the client sent it comes back with exact
 * bytes and length, a refusal carries our own challenge, and pagination links
 * lose the upstream's origin. Its body caps: pass-through.limits.test.ts;
 * through the binary with real clients: tests/integration/proxy/.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { relativeLinks } from "../../src/proxy/pass-through";
import { countingPassThrough, readsOf } from "../support/cache/in-process";
import { MediaType, startUpstream, type Upstream } from "../support/upstream";

let upstream: Upstream;
beforeAll(async () => {
  upstream = await startUpstream({ onlyThroughProxy: true });
}, 120_000);
afterAll(async () => {
  await upstream?.stop();
});

test("a manifest read as docxy comes back with the upstream's bytes, digest, type and length", async () => {
  const { app } = upstream.images;
  const response = await countingPassThrough().forward(readsOf(upstream).request("manifests", "acme/app", "v1", { headers: { accept: MediaType.dockerManifest } }));
  expect(response.status).toBe(200);
  expect(response.headers.get("docker-content-digest")).toBe(app.digest);
  expect(response.headers.get("content-type")).toBe(app.mediaType);
  expect(response.headers.get("content-length")).toBe(String(app.bytes.length));
  expect(new Uint8Array(await response.arrayBuffer())).toEqual(app.bytes);
});

test("a blob HEAD stays a HEAD and carries the blob's length; a GET follows the CDN redirect itself", async () => {
  const layer = upstream.images.app.manifests[0]!.layers[0]!;
  const cdnGets = () => upstream.cdnLog.filter((r) => r.method === "GET" && r.path.includes(layer.digest.slice(7))).length;
  const before = cdnGets();
  const head = await countingPassThrough().forward(readsOf(upstream).request("blobs", "acme/app", layer.digest, { method: "HEAD" }));
  expect(head.status).toBe(200);
  expect(head.headers.get("content-length")).toBe(String(layer.size));
  expect(cdnGets()).toBe(before);
  const get = await countingPassThrough().forward(readsOf(upstream).request("blobs", "acme/app", layer.digest));
  expect(get.status).toBe(200);
  expect(get.headers.get("location")).toBeNull();
  expect((await get.arrayBuffer()).byteLength).toBe(layer.size);
  expect(cdnGets()).toBe(before + 1);
});

test("a private repository read without a token is refused with docxy's own challenge and registry JSON", async () => {
  const response = await countingPassThrough().forward(readsOf(upstream).request("manifests", "private/secret", "latest", { headers: { accept: MediaType.ociManifest } }));
  expect(response.status).toBe(401);
  expect(response.headers.get("www-authenticate")).toContain('realm="http://docxy.test/auth/dockerhub/token"');
  expect(response.headers.get("cache-control")).toBe("no-store");
  expect(((await response.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("UNAUTHORIZED");
});

test("pagination links lose the upstream origin", () => {
  expect(relativeLinks('<https://registry-1.docker.io/v2/library/x/tags/list?last=t99&n=100>; rel="next"')).toBe(
    '</v2/library/x/tags/list?last=t99&n=100>; rel="next"',
  );
  expect(relativeLinks('</v2/x/tags/list?n=1&last=a>; rel="next"')).toBe('</v2/x/tags/list?n=1&last=a>; rel="next"');
});
