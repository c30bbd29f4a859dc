/**
 * The far hop's outage, seen from the near hop of a docxy chain (issue 14
 * items 1 and 2): the real registry ← far docxy ← fault switch ← near docxy,
 * each docxy with only `upstream_registry` set. The switch
 * (tests/support/trouble.ts) stands for the link to the VPS, so it is in
 * front of everything the far host serves: its /v2/ API and its token
 * endpoint. The far docxy builds its realm from the loopback Host it is
 * reached by (the switch's address), so the realm the near docxy discovers
 * from the far challenge is behind the same switch, as it is for real when
 * both live on the one far host.
 *
 * The near cache is warmed through the switch (public single- and multi-arch,
 * and the private image with the registry user's login); then the far hop
 * answers 429 (with Retry-After), 500 or 503, is refused, or stops answering.
 * skopeo still copies every cached image through the near docxy with the same
 * bytes (the private one only with the credentials that read it before),
 * while an uncached image fails with the far hop's reason as registry JSON.
 * `tag_ttl = "0s"` at the near hop makes every tag pull really ask the far one.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { ALL_MANIFESTS, cachedBlobPath, docxyToken, isCached, sha256, startCachingDocxy, tempFiles, waitFor, type CachingDocxy } from "../support/cache/harness";
import { startDocxy, type Docxy } from "../support/docxy-process";
import { basic } from "../support/proxied-upstream";
import { skopeoCopy, skopeoCopyOk } from "../support/skopeo";
import { refusalOf, startTrouble, TROUBLES, type Trouble, type TroubleMode } from "../support/trouble";
import { startUpstream, type Upstream } from "../support/upstream";

let registry: Upstream;
let far: Docxy;
let link: Trouble;
let near: CachingDocxy;
let nearHost: string;

beforeAll(async () => {
  registry = await startUpstream({ onlyThroughProxy: true });
  far = await startDocxy({ config: `[registry]\nupstream_registry = "${registry.registryUrl}"\n` });
  link = await startTrouble(far.url);
  const config = [
    "[registry]",
    `upstream_registry = "${link.url}"`,
    "[upstream]",
    "header_timeout = 2", // the hung far hop is waited for this long per request
    "ping_timeout = 1",
    "[cache]",
    'tag_ttl = "0s"',
    "",
  ].join("\n");
  near = await startCachingDocxy(config);
  nearHost = new URL(near.url).host;
}, 120_000);
afterAll(async () => {
  await near?.stop();
  await link?.stop();
  await far?.stop();
  await registry?.stop();
});

const IMAGES = [
  { ref: "library/alpine:latest", all: true }, // a manifest list of two platforms
  { ref: "acme/app:v1", all: false },
];
const PRIVATE = "private/secret:latest";
const warm: Record<string, Record<string, string>> = {};

/** A manifest GET at the near hop as a client does it, with the near docxy's token (an offline one while the far hop is down). */
async function manifest(path: string) {
  const token = await docxyToken(near.url, path.slice(0, path.indexOf("/manifests/")));
  const response = await fetch(`${near.url}/v2/${path}`, { headers: { accept: ALL_MANIFESTS, authorization: `Bearer ${token}` } });
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

test("the far docxy's realm, as the near one reaches it, is behind the same switch", async () => {
  const ping = await fetch(`${link.url}/v2/`);
  await ping.arrayBuffer();
  expect(ping.status).toBe(401);
  expect(ping.headers.get("www-authenticate")).toBe(`Bearer realm="${link.url}/auth/dockerhub/token",service="${registry.service}"`);
});

test("warm: skopeo copies the public images and, logged in, the private one through both hops", async () => {
  for (const { ref, all } of IMAGES) warm[ref] = await skopeoCopyOk(nearHost, ref, all);
  // A second pull while the far hop is up: every blob's access check has run, so the near docxy knows the repositories are public.
  for (const { ref, all } of IMAGES) expect(await skopeoCopyOk(nearHost, ref, all)).toEqual(warm[ref]!);
  warm[PRIVATE] = await skopeoCopyOk(nearHost, PRIVATE, false, "alice:secret");
  expect(warm[PRIVATE]!["manifest.json"]).toBe(registry.images.secret.digest);
  const { alpine, app, secret } = registry.images;
  const digests = [alpine, app, secret].flatMap((i) => [i.digest, ...i.manifests.flatMap((m) => [m.digest, m.config.digest, ...m.layers.map((l) => l.digest)])]);
  for (const digest of digests) await waitFor(() => isCached(near.cacheDir, digest), `${digest} committed at the near hop`);
}, 120_000);

for (const { name, mode, uncached } of TROUBLES) {
  test(`the far hop ${name}: cached images still pull through the near hop, private ones only with the old credentials; an uncached one fails with ${uncached.status} ${uncached.code}`, async () => {
    await link.set(mode);
    try {
      const faultsBefore = link.faulted.length;
      for (const { ref, all } of IMAGES) expect({ ref, files: await skopeoCopyOk(nearHost, ref, all) }).toEqual({ ref, files: warm[ref]! });
      expect(await skopeoCopyOk(nearHost, PRIVATE, false, "alice:secret")).toEqual(warm[PRIVATE]!);
      expect((await skopeoCopy(nearHost, PRIVATE, false, "alice:wrong-password")).code).not.toBe(0);
      expect((await skopeoCopy(nearHost, PRIVATE)).code).not.toBe(0);

      // The tag came from the near cache, marked stale, because the far hop really failed.
      const tag = await manifest("acme/app/manifests/v1");
      expect({ status: tag.status, cache: tag.cache, digest: tag.digest }).toEqual({ status: 200, cache: "STALE", digest: registry.images.app.digest });
      if (mode.kind !== "refuse") expect(link.faulted.length).toBeGreaterThan(faultsBefore);

      // nginx was never pulled: the far hop's reason, as registry JSON, never the near docxy's own 500.
      const cold = await manifest("library/nginx/manifests/latest");
      expect(refusalOf(cold.status, cold.code, cold.retryAfter)).toEqual(uncached);
      const copy = await skopeoCopy(nearHost, "library/nginx:latest");
      expect(copy.code).not.toBe(0);
      if (uncached.code === "TOOMANYREQUESTS") expect(copy.stderr).toContain("toomanyrequests");
    } finally {
      await link.set({ kind: "pass" });
    }
  }, 120_000);
}

test("nothing was half-committed at the near hop: no temp files, every cached blob hashes to its digest", () => {
  expect(tempFiles(near.cacheDir)).toEqual([]);
  const { alpine, app, secret } = registry.images;
  for (const m of [alpine, app, secret].flatMap((i) => i.manifests)) {
    for (const digest of [m.digest, m.config.digest, ...m.layers.map((l) => l.digest)]) {
      expect(sha256(readFileSync(cachedBlobPath(near.cacheDir, digest)))).toBe(digest);
    }
  }
});

test("after recovery the near hop revalidates its tags with the far one, and pulls work as before", async () => {
  const farMark = far.log().length;
  const tag = await manifest("acme/app/manifests/v1");
  expect({ status: tag.status, cache: tag.cache }).toEqual({ status: 200, cache: "REVALIDATED" });
  // The far docxy logs a request once it has answered it, and its log reaches us through a pipe: wait for the line.
  await waitFor(() => far.log().slice(farMark).includes("/v2/acme/app/manifests/v1"), "the far hop logging the revalidation");
  for (const { ref, all } of IMAGES) expect(await skopeoCopyOk(nearHost, ref, all)).toEqual(warm[ref]!);
  expect(await skopeoCopyOk(nearHost, PRIVATE, false, "alice:secret")).toEqual(warm[PRIVATE]!);
  const cold = await manifest("library/nginx/manifests/latest");
  expect({ status: cold.status, cache: cold.cache, digest: cold.digest }).toEqual({ status: 200, cache: "MISS", digest: registry.images.nginx.digest });
  // and the private image is still refused to a wrong password, now by the registry itself
  const wrong = await fetch(`${near.url}/auth/dockerhub/token?scope=repository:private/secret:pull`, { headers: { authorization: basic("alice", "wrong") } });
  await wrong.arrayBuffer();
  expect(wrong.status).toBe(401);
}, 120_000);
