/**
 * How the cache is opened, and what it is worth when the upstream is gone:
 * `enabled = false` and an unusable directory both give a working pure
 * forwarder; a corrupt index is replaced; with the upstream stopped, cached
 * images still pull (skopeo), an uncached one is a registry JSON error, and a
 * private image never leaks from the stale cache. The last test stops the
 * upstream, so it runs last.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { basic } from "../../support/proxied-upstream";
import { skopeoCopy } from "../../support/skopeo";
import {
  ALL_MANIFESTS,
  docxyToken,
  isCached,
  newCacheDir,
  registryToml,
  sha256,
  startCachingDocxy,
  waitFor,
  type CachingDocxy,
} from "../../support/cache/harness";
import { startUpstream, type Upstream } from "../../support/upstream";

let upstream: Upstream;
const started: CachingDocxy[] = [];
beforeAll(async () => {
  upstream = await startUpstream({ onlyThroughProxy: true });
}, 60_000);
afterAll(async () => {
  await Promise.all(started.map((d) => d.stop()));
  await upstream?.stop();
});

async function docxyWith(extraToml = "", cacheDir?: string): Promise<CachingDocxy> {
  const d = await startCachingDocxy(registryToml(upstream) + extraToml, cacheDir ? { cacheDir } : {});
  started.push(d);
  return d;
}

const cdnGets = (digest: string) => upstream.cdnLog.filter((r) => r.method === "GET" && r.path.endsWith(`/${digest.slice(7)}/data`)).length;

async function getBlob(d: CachingDocxy, repository: string, digest: string) {
  const response = await fetch(`${d.url}/v2/${repository}/blobs/${digest}`, { headers: { authorization: `Bearer ${await docxyToken(d.url, repository)}` } });
  return { status: response.status, cache: response.headers.get("x-cache"), digest: sha256(await response.arrayBuffer()) };
}

/** Two GETs of a blob nobody fetched yet: both pass through to the CDN, neither says X-Cache. */
async function expectPassThrough(d: CachingDocxy, repository: string, digest: string) {
  const before = cdnGets(digest);
  for (let i = 0; i < 2; i++) expect(await getBlob(d, repository, digest)).toEqual({ status: 200, cache: null, digest });
  expect(cdnGets(digest) - before).toBe(2);
  const manifest = await fetch(`${d.url}/v2/${repository}/manifests/latest`, {
    headers: { accept: ALL_MANIFESTS, authorization: `Bearer ${await docxyToken(d.url, repository)}` },
  });
  expect(manifest.headers.get("x-cache")).toBeNull();
  return manifest;
}

test("enabled = false: a pure forwarder, no X-Cache, every GET goes upstream, no cache directory", async () => {
  const d = await docxyWith(`[cache]\nenabled = false\n`);
  const { alpine } = upstream.images;
  const manifest = await expectPassThrough(d, "library/alpine", alpine.manifests[0]!.layers[0]!.digest);
  expect(sha256(await manifest.arrayBuffer())).toBe(alpine.digest);
  expect(existsSync(d.cacheDir)).toBe(false);
  expect(d.log()).not.toContain("cache ready");
});

test("a cache directory that is a regular file: docxy starts, logs 'cache disabled', and forwards", async () => {
  const file = join(mkdtempSync(join(tmpdir(), "docxy-not-a-dir-")), "cache");
  writeFileSync(file, "not a directory\n");
  try {
    const d = await docxyWith("", file);
    expect(d.log()).toContain("cache disabled");
    const { nginx } = upstream.images;
    const manifest = await expectPassThrough(d, "library/nginx", nginx.manifests[0]!.layers[0]!.digest);
    expect(sha256(await manifest.arrayBuffer())).toBe(nginx.digest);
    expect(readFileSync(file, "utf8")).toBe("not a directory\n");
  } finally {
    rmSync(join(file, ".."), { recursive: true, force: true });
  }
});

test("a corrupt index is replaced: the cache still works", async () => {
  const dir = newCacheDir();
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "index.sqlite"), "this is not SQLite ".repeat(100));
  const d = await docxyWith("", dir);
  expect(d.log()).not.toContain("cache disabled");
  const layer = upstream.images.manytags.manifests[0]!.layers[0]!;
  expect(await getBlob(d, "library/manytags", layer.digest)).toEqual({ status: 200, cache: "MISS", digest: layer.digest });
  await waitFor(() => isCached(d.cacheDir, layer.digest), "the commit");
  expect(await getBlob(d, "library/manytags", layer.digest)).toEqual({ status: 200, cache: "HIT", digest: layer.digest });
});

test("upstream stopped: cached images still pull, an uncached one is a JSON UNAVAILABLE, a private one never leaks", async () => {
  const d = await docxyWith(); // default tag_ttl: tags are within it during the outage
  const stale = await docxyWith(`[cache]\ntag_ttl = "0s"\n`); // tags expired: the stale path
  const host = new URL(d.url).host;
  const copy = (ref: string, all = false) => skopeoCopy(host, ref, all);

  const app = await copy("acme/app:v1"); // pulled once: cold only
  expect(app.code).toBe(0);
  const alpine = await copy("library/alpine:latest", true);
  expect((await copy("library/alpine:latest", true)).files).toEqual(alpine.files); // pulled twice: also served once from the cache

  const { secret } = upstream.images;
  const alice = `Bearer ${await docxyToken(stale.url, "private/secret", basic("alice", "secret"))}`;
  const aliceGet = await fetch(`${stale.url}/v2/private/secret/manifests/latest`, { headers: { accept: ALL_MANIFESTS, authorization: alice } });
  expect(sha256(await aliceGet.arrayBuffer())).toBe(secret.digest);

  await upstream.stop();

  const noToken = async (path: string) => {
    const r = await fetch(`${d.url}/v2/${path}`, { headers: { accept: ALL_MANIFESTS } });
    return { status: r.status, cache: r.headers.get("x-cache"), digest: sha256(await r.arrayBuffer()) };
  };
  const pulledOnce = await copy("acme/app:v1");
  const pulledTwice = await copy("library/alpine:latest", true);
  const token = await fetch(`${d.url}/auth/dockerhub/token?scope=repository:acme/app:pull`);
  console.log(`outage: docxy's token endpoint answers ${token.status} ${await token.text()}; skopeo: ${pulledOnce.stderr} / ${pulledTwice.stderr}`);

  // An image never pulled: a registry JSON error, 5xx, UNAVAILABLE.
  const uncached = await fetch(`${d.url}/v2/library/nginx/manifests/latest`, { headers: { accept: ALL_MANIFESTS } });
  expect(uncached.status).toBeGreaterThanOrEqual(500);
  expect(((await uncached.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("UNAVAILABLE");

  // alice's private image, stale in the cache: never served to a client that proved nothing.
  const leak = await fetch(`${stale.url}/v2/private/secret/manifests/latest`, { headers: { accept: ALL_MANIFESTS } });
  const leaked = { status: leak.status, cache: leak.headers.get("x-cache"), digest: sha256(await leak.arrayBuffer()) };
  expect(leaked.status).not.toBe(200);
  expect(leaked.digest).not.toBe(secret.digest);

  // Cached public images keep working (README "Who may read cached content").
  expect({
    "skopeo acme/app:v1 (pulled once before)": { code: pulledOnce.code, same: pulledOnce.code === 0 && Bun.deepEquals(pulledOnce.files, app.files) },
    "skopeo library/alpine:latest --all (pulled twice before)": { code: pulledTwice.code, same: pulledTwice.code === 0 && Bun.deepEquals(pulledTwice.files, alpine.files) },
    "GET acme/app manifest v1, no token": await noToken("acme/app/manifests/v1"),
    "GET library/alpine manifest latest, no token": await noToken("library/alpine/manifests/latest"),
  }).toEqual({
    "skopeo acme/app:v1 (pulled once before)": { code: 0, same: true },
    "skopeo library/alpine:latest --all (pulled twice before)": { code: 0, same: true },
    "GET acme/app manifest v1, no token": { status: 200, cache: "HIT", digest: upstream.images.app.digest },
    "GET library/alpine manifest latest, no token": { status: 200, cache: "HIT", digest: upstream.images.alpine.digest },
  });
}, 90_000);
