/**
 * Upstream trouble never makes cached content unpullable, end to end: the
 * real upstream (distribution 2.8, its token server and CDN) behind fault
 * switches (tests/support/trouble.ts) on the registry and the token service,
 * the docxy binary configured on the switches, skopeo as the client.
 *
 * The cache is warmed with a multi-arch and a single-arch image; then every
 * request to the upstream answers 429 (with Retry-After), 500 or 503, hangs
 * past docxy's timeouts, or is refused. In each mode skopeo still copies the
 * cached images with the same bytes, while an uncached image fails with the
 * upstream's real reason as registry JSON. `tag_ttl = "0s"` makes every tag
 * revalidate, so each pull really asks the upstream (and meets the fault).
 * After recovery the tags are revalidated again, not served stale.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { ALL_MANIFESTS, cachedBlobPath, docxyToken, isCached, sha256, startCachingDocxy, tempFiles, waitFor, type CachingDocxy } from "../support/cache/harness";
import { skopeoCopy, skopeoCopyOk } from "../support/skopeo";
import { refusalOf, startTrouble, TROUBLES, type Trouble, type TroubleMode } from "../support/trouble";
import { startUpstream, type Upstream } from "../support/upstream";

let upstream: Upstream;
let registry: Trouble;
let tokens: Trouble;
let docxy: CachingDocxy;
let host: string;
beforeAll(async () => {
  upstream = await startUpstream({ onlyThroughProxy: true });
  registry = await startTrouble(upstream.registryUrl);
  tokens = await startTrouble(upstream.realm);
  const config = [
    "[registry]",
    `upstream_registry = "${registry.url}"`,
    `auth_realm = "${tokens.via(upstream.realm)}"`,
    `auth_service = "${upstream.service}"`,
    "[upstream]",
    "header_timeout = 2", // the hung mode waits this long per upstream request
    "ping_timeout = 1",
    "[cache]",
    'tag_ttl = "0s"',
    "",
  ].join("\n");
  docxy = await startCachingDocxy(config);
  host = new URL(docxy.url).host;
}, 120_000);
afterAll(async () => {
  await docxy?.stop();
  await Promise.all([registry?.stop(), tokens?.stop()]);
  await upstream?.stop();
});

const IMAGES = [
  { ref: "library/alpine:latest", all: true }, // a Docker manifest list of two platforms
  { ref: "acme/app:v1", all: false }, // one schema2 manifest
];
const warm: Record<string, Record<string, string>> = {};

async function both(mode: TroubleMode): Promise<void> {
  await Promise.all([registry.set(mode), tokens.set(mode)]);
}

/** A manifest GET as a client does it, with docxy's token for the repository (an offline one while the token service is down). */
async function manifest(path: string) {
  const token = await docxyToken(docxy.url, path.slice(0, path.indexOf("/manifests/")));
  const response = await fetch(`${docxy.url}/v2/${path}`, { headers: { accept: ALL_MANIFESTS, authorization: `Bearer ${token}` } });
  const bytes = new Uint8Array(await response.arrayBuffer());
  const text = new TextDecoder().decode(bytes);
  return {
    status: response.status,
    cache: response.headers.get("x-cache"),
    retryAfter: response.headers.get("retry-after"),
    digest: sha256(bytes),
    code: text.startsWith('{"errors"') ? (JSON.parse(text).errors[0].code as string) : undefined,
  };
}

test("warm: skopeo copies both images through docxy, and their content is committed", async () => {
  for (const { ref, all } of IMAGES) warm[ref] = await skopeoCopyOk(host, ref, all);
  // A second pull while the upstream is up: every blob's access check has run, so docxy knows the repositories are public.
  for (const { ref, all } of IMAGES) expect(await skopeoCopyOk(host, ref, all)).toEqual(warm[ref]!);
  const { alpine, app } = upstream.images;
  const digests = [alpine.digest, app.digest, ...[alpine, app].flatMap((i) => i.manifests.flatMap((m) => [m.digest, m.config.digest, ...m.layers.map((l) => l.digest)]))];
  for (const digest of digests) await waitFor(() => isCached(docxy.cacheDir, digest), `${digest} committed`);
}, 120_000);

for (const { name, mode, uncached } of TROUBLES) {
  test(`the upstream ${name}: skopeo still copies the cached images, an uncached one fails with ${uncached.status} ${uncached.code}`, async () => {
    await both(mode);
    try {
      const faultsBefore = registry.faulted.length + tokens.faulted.length;
      for (const { ref, all } of IMAGES) expect({ ref, files: await skopeoCopyOk(host, ref, all) }).toEqual({ ref, files: warm[ref]! });

      // The tag was answered from the cache, marked stale, because the upstream really failed.
      const tag = await manifest("acme/app/manifests/v1");
      expect({ status: tag.status, cache: tag.cache, digest: tag.digest }).toEqual({ status: 200, cache: "STALE", digest: upstream.images.app.digest });
      if (mode.kind !== "refuse") expect(registry.faulted.length + tokens.faulted.length).toBeGreaterThan(faultsBefore);

      // nginx was never pulled: the upstream's reason, as registry JSON, never docxy's own 500.
      const cold = await manifest("library/nginx/manifests/latest");
      expect(refusalOf(cold.status, cold.code, cold.retryAfter)).toEqual(uncached);
      const copy = await skopeoCopy(host, "library/nginx:latest");
      expect(copy.code).not.toBe(0);
      if (uncached.code === "TOOMANYREQUESTS") expect(copy.stderr).toContain("toomanyrequests");
    } finally {
      await both({ kind: "pass" });
    }
  }, 120_000);
}

test("private content: the credentials that read it before still read it while the upstream is in trouble; a wrong password and anonymous clients do not", async () => {
  const { secret } = upstream.images;
  const ref = "private/secret:latest";
  const files = await skopeoCopyOk(host, ref, false, "alice:secret");
  expect(files["manifest.json"]).toBe(secret.digest);
  const modes: { name: string; set: () => Promise<unknown> }[] = [
    { name: "registry and token service answer 429", set: () => both({ kind: "status", status: 429, retryAfter: "1" }) },
    // The registry answers, but refuses the offline token its token service could not replace.
    { name: "only the token service is down", set: () => tokens.set({ kind: "refuse" }) },
  ];
  for (const { name, set } of modes) {
    await set();
    try {
      expect({ name, files: await skopeoCopyOk(host, ref, false, "alice:secret") }).toEqual({ name, files });
      expect({ name, code: (await skopeoCopy(host, ref, false, "alice:wrong-password")).code }).not.toEqual({ name, code: 0 });
      expect({ name, code: (await skopeoCopy(host, ref)).code }).not.toEqual({ name, code: 0 });
    } finally {
      await both({ kind: "pass" });
    }
  }
}, 120_000);

test("nothing was half-committed: no temp files, every cached blob still hashes to its digest", () => {
  expect(tempFiles(docxy.cacheDir)).toEqual([]);
  const { alpine, app } = upstream.images;
  for (const m of [...alpine.manifests, ...app.manifests]) {
    for (const digest of [m.digest, m.config.digest, ...m.layers.map((l) => l.digest)]) {
      expect(sha256(readFileSync(cachedBlobPath(docxy.cacheDir, digest)))).toBe(digest);
    }
  }
});

test("after recovery the tags are revalidated with the upstream, not served stale, and pulls work as before", async () => {
  const tag = await manifest("acme/app/manifests/v1");
  expect({ status: tag.status, cache: tag.cache }).toEqual({ status: 200, cache: "REVALIDATED" });
  for (const { ref, all } of IMAGES) expect(await skopeoCopyOk(host, ref, all)).toEqual(warm[ref]!);
  const cold = await manifest("library/nginx/manifests/latest");
  expect({ status: cold.status, cache: cold.cache, digest: cold.digest }).toEqual({ status: 200, cache: "MISS", digest: upstream.images.nginx.digest });
}, 120_000);
