/**
 * Who may read cached content, against the real registry and token server.
 * alice pulls the private image through docxy, so its manifest and blobs are
 * cached; clients who have not proven access get the upstream's refusal,
 * never the cached bytes, whether they ask under the private repository's
 * name or under a public repository's name. alice keeps getting HITs, and a
 * public repository is served from the cache to anonymous clients.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { basic } from "../../support/proxied-upstream";
import { ALL_MANIFESTS, docxyToken, isCached, registryToml, sha256, startCachingDocxy, waitFor, type CachingDocxy } from "../../support/cache/harness";
import { startUpstream, type Upstream } from "../../support/upstream";

let upstream: Upstream;
let docxy: CachingDocxy;
let alice: string;
beforeAll(async () => {
  upstream = await startUpstream({ onlyThroughProxy: true });
  docxy = await startCachingDocxy(registryToml(upstream));
  alice = `Bearer ${await docxyToken(docxy.url, "private/secret", basic("alice", "secret"))}`;
}, 60_000);
afterAll(async () => {
  await docxy?.stop();
  await upstream?.stop();
});

const secret = () => upstream.images.secret;
const secretBlobs = () => [secret().manifests[0]!.config, ...secret().manifests[0]!.layers];

async function get(path: string, authorization?: string, method = "GET") {
  const headers: Record<string, string> = { accept: ALL_MANIFESTS };
  if (authorization) headers.authorization = authorization;
  const response = await fetch(`${docxy.url}/v2/${path}`, { method, headers });
  const bytes = new Uint8Array(await response.arrayBuffer());
  return { status: response.status, cache: response.headers.get("x-cache"), challenge: response.headers.get("www-authenticate"), bytes, digest: sha256(bytes) };
}

/** What an anonymous client holds: nothing, or docxy's anonymous token for the repository it asks for. */
const anonymous = async (repository: string) => [undefined, `Bearer ${await docxyToken(docxy.url, repository)}`];

test("alice's pull puts the private image in the cache", async () => {
  const manifest = await get("private/secret/manifests/latest", alice);
  expect({ status: manifest.status, cache: manifest.cache, digest: manifest.digest }).toEqual({ status: 200, cache: "MISS", digest: secret().digest });
  for (const blob of secretBlobs()) {
    const got = await get(`private/secret/blobs/${blob.digest}`, alice);
    expect({ status: got.status, digest: got.digest }).toEqual({ status: 200, digest: blob.digest });
  }
  for (const digest of [secret().digest, ...secretBlobs().map((b) => b.digest)]) await waitFor(() => isCached(docxy.cacheDir, digest), `${digest} cached`);
});

test("a client without access gets 401 with docxy's challenge for the cached manifest and blobs, never the content", async () => {
  for (const authorization of await anonymous("private/secret")) {
    for (const path of ["manifests/latest", `manifests/${secret().digest}`, ...secretBlobs().map((b) => `blobs/${b.digest}`)]) {
      for (const method of ["GET", "HEAD"]) {
        const got = await get(`private/secret/${path}`, authorization, method);
        expect({ path, method, auth: Boolean(authorization), status: got.status, cache: got.cache }).toEqual({
          path,
          method,
          auth: Boolean(authorization),
          status: 401,
          cache: null,
        });
        expect(got.challenge).toContain(`realm="${docxy.url}/auth/dockerhub/token"`);
        expect(got.bytes.length).toBeLessThan(200); // an error at most
      }
    }
  }
});

test("alice still gets the cached manifest and blobs (HIT)", async () => {
  const manifest = await get(`private/secret/manifests/${secret().digest}`, alice);
  expect({ status: manifest.status, cache: manifest.cache, digest: manifest.digest }).toEqual({ status: 200, cache: "HIT", digest: secret().digest });
  const byTag = await get("private/secret/manifests/latest", alice);
  expect({ status: byTag.status, cache: byTag.cache, digest: byTag.digest }).toEqual({ status: 200, cache: "HIT", digest: secret().digest });
  for (const blob of secretBlobs()) {
    const got = await get(`private/secret/blobs/${blob.digest}`, alice);
    expect({ status: got.status, cache: got.cache, digest: got.digest }).toEqual({ status: 200, cache: "HIT", digest: blob.digest });
  }
});

test("a public repository is served from the cache to anonymous clients", async () => {
  const { app } = upstream.images;
  const token = `Bearer ${await docxyToken(docxy.url, "acme/app")}`;
  const layer = app.manifests[0]!.layers[0]!;
  expect((await get(`acme/app/blobs/${layer.digest}`, token)).cache).toBe("MISS");
  expect((await get("acme/app/manifests/v1", token)).cache).toBe("MISS");
  await waitFor(() => isCached(docxy.cacheDir, layer.digest), "the commit");
  const cdnBefore = upstream.cdnLog.length;
  for (const authorization of await anonymous("acme/app")) {
    const blob = await get(`acme/app/blobs/${layer.digest}`, authorization);
    expect({ status: blob.status, cache: blob.cache, digest: blob.digest }).toEqual({ status: 200, cache: "HIT", digest: layer.digest });
    const manifest = await get("acme/app/manifests/v1", authorization);
    expect({ status: manifest.status, cache: manifest.cache, digest: manifest.digest }).toEqual({ status: 200, cache: "HIT", digest: app.digest });
  }
  expect(upstream.cdnLog.length).toBe(cdnBefore);
});

test("the private image's digests asked for under a public repository's name are not served from the cache", async () => {
  // acme/app is known public by now (previous test); the cache is keyed by digest alone.
  const secretDigests = [secret().digest, ...secretBlobs().map((b) => b.digest)];
  const leaks: string[] = [];
  for (const authorization of await anonymous("acme/app")) {
    for (const path of [`manifests/${secret().digest}`, ...secretBlobs().map((b) => `blobs/${b.digest}`)]) {
      const got = await get(`acme/app/${path}`, authorization);
      // The registry itself answers 404 (not linked in acme/app): anything but the content is acceptable.
      if (got.status === 200 || secretDigests.includes(got.digest)) {
        leaks.push(`GET /v2/acme/app/${path} ${authorization ? "with an anonymous token" : "without Authorization"}: ${got.status} X-Cache ${got.cache}`);
      }
    }
  }
  expect(leaks).toEqual([]);
});
