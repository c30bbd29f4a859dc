/**
 * `[cache] keep_deleted` in process (cache/deleted-tags.ts, manifest-cache.ts,
 * access-gate.ts) against the real test registry, where manifests and blobs
 * are deleted through its API after docxy cached them. Two caches share the
 * upstream: one keeping what the upstream deleted, one as docxy is by default.
 * tag_ttl is 0, so every request by tag asks the upstream. Through the
 * binary: tests/integration/cache/keep-deleted.test.ts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { inProcessCache, type InProcessCache } from "../support/cache/in-process";
import { ALL_MANIFESTS, sha256, waitFor } from "../support/cache/harness";
import { deleteManifest } from "../support/push";
import { startUpstream, type Upstream } from "../support/upstream";

let upstream: Upstream;
let keeping: InProcessCache;
let plain: InProcessCache;
const logged: string[] = [];
beforeAll(async () => {
  upstream = await startUpstream({ onlyThroughProxy: true });
  keeping = await inProcessCache(upstream, { tagTtlMs: 0, keepDeleted: true, log: (line) => logged.push(line) });
  plain = await inProcessCache(upstream, { tagTtlMs: 0 });
}, 120_000);
afterAll(async () => {
  keeping?.close();
  plain?.close();
  await upstream?.stop();
});

const get = (c: InProcessCache, kind: "manifests" | "blobs", repository: string, reference: string, headers: Record<string, string> = {}, method = "GET") =>
  c.front.answer(c.request(kind, repository, reference, { method, headers: { accept: ALL_MANIFESTS, ...headers } }));
const errorCode = async (response: Response) => ((await response.json()) as { errors: { code: string }[] }).errors[0]!.code;
const deleting = async (repository: string) => ({ authorization: `Bearer ${await upstream.token(`repository:${repository}:delete`, "alice")}` });
/** What docxy learns in the background after a fetch (access-gate.ts learn), settled before the upstream changes. */
const learntPublic = (c: InProcessCache, repository: string) =>
  waitFor(() => c.index.getRepositoryAccess("dockerhub", repository)?.public === true, `${repository} learnt public`);

test("a public tag deleted upstream: kept with a Warning (logged once), a plain 404 MANIFEST_UNKNOWN without keep_deleted", async () => {
  const app = upstream.images.app;
  const manifest = app.manifests[0]!;
  for (const c of [keeping, plain]) {
    const first = await get(c, "manifests", "acme/app", "v1");
    expect([first.status, first.headers.get("docker-content-digest")]).toEqual([200, app.digest]);
    await first.arrayBuffer();
    await learntPublic(c, "acme/app");
  }
  await deleteManifest(upstream.registryUrl, "acme/app", app.digest, await deleting("acme/app"));

  for (let i = 0; i < 2; i++) {
    const kept = await get(keeping, "manifests", "acme/app", "v1");
    expect(kept.status).toBe(200);
    expect(kept.headers.get("docker-content-digest")).toBe(app.digest);
    expect(kept.headers.get("x-cache")).toBe("STALE");
    expect(kept.headers.get("warning")).toBe('110 docxy "Response is Stale: docker.io/acme/app:v1 is no longer in the upstream"');
    expect(sha256(new Uint8Array(await kept.arrayBuffer()))).toBe(app.digest);
  }
  const head = await get(keeping, "manifests", "acme/app", "v1", {}, "HEAD");
  expect([head.status, head.headers.get("docker-content-digest"), head.headers.get("content-length")]).toEqual([200, app.digest, String(manifest.size)]);
  expect(head.headers.get("warning")).toContain("no longer in the upstream");
  expect(logged.filter((line) => line.includes("tag deleted upstream"))).toHaveLength(1);
  expect(logged[0]).toContain("repository=acme/app tag=v1");

  const gone = await get(plain, "manifests", "acme/app", "v1");
  expect(gone.status).toBe(404);
  expect(await errorCode(gone)).toBe("MANIFEST_UNKNOWN");
  expect((await get(plain, "manifests", "acme/app", "v1", {}, "HEAD")).status).toBe(404);
});

test("by digest: a manifest and a blob deleted upstream stay served with keep_deleted once publicness is asked again, and are 404 without", async () => {
  const alpine = upstream.images.alpine;
  const child = alpine.manifests[0]!;
  const layer = child.layers[0]!;
  for (const c of [keeping, plain]) {
    for (const [kind, digest] of [["manifests", child.digest], ["blobs", layer.digest]] as const) {
      const filled = await get(c, kind, "library/alpine", digest);
      expect(filled.status).toBe(200);
      await filled.arrayBuffer();
    }
    await learntPublic(c, "library/alpine");
  }
  const auth = await deleting("library/alpine");
  await deleteManifest(upstream.registryUrl, "library/alpine", child.digest, auth);
  const blobDeleted = await fetch(`${upstream.registryUrl}/v2/library/alpine/blobs/${layer.digest}`, { method: "DELETE", headers: auth });
  expect(blobDeleted.status).toBe(202);

  for (const c of [keeping, plain]) {
    // Publicness is trusted for an hour without asking; aged here, the next read asks the upstream.
    c.index.putRepositoryAccess("dockerhub", "library/alpine", true, Date.now() - 2 * 60 * 60 * 1000);
    const manifest = await get(c, "manifests", "library/alpine", child.digest);
    const blob = await get(c, "blobs", "library/alpine", layer.digest);
    if (c === keeping) {
      expect([manifest.status, sha256(new Uint8Array(await manifest.arrayBuffer()))]).toEqual([200, child.digest]);
      expect([blob.status, sha256(new Uint8Array(await blob.arrayBuffer()))]).toEqual([200, layer.digest]);
    } else {
      expect([manifest.status, await errorCode(manifest)]).toEqual([404, "MANIFEST_UNKNOWN"]);
      expect([blob.status, await errorCode(blob)]).toEqual([404, "BLOB_UNKNOWN"]);
    }
  }
});

test("a private tag deleted upstream stays with the credentials that read it, and never reaches an anonymous client", async () => {
  const secret = upstream.images.secret;
  const alice = { authorization: `Bearer ${await upstream.token("private/secret", "alice")}` };
  // By tag, which fills the cache, then by digest: a hit that alice proves access for (a HEAD with her token).
  for (const reference of ["latest", secret.digest]) {
    const read = await get(keeping, "manifests", "private/secret", reference, alice);
    expect([read.status, read.headers.get("docker-content-digest")]).toEqual([200, secret.digest]);
    await read.arrayBuffer();
  }
  await deleteManifest(upstream.registryUrl, "private/secret", secret.digest, await deleting("private/secret"));

  const kept = await get(keeping, "manifests", "private/secret", "latest", alice);
  expect([kept.status, kept.headers.get("docker-content-digest")]).toEqual([200, secret.digest]);
  expect(kept.headers.get("warning")).toContain("no longer in the upstream");
  await kept.arrayBuffer();

  // Anonymous: the upstream says 401 (not 404) to its HEAD, and that is what the client gets.
  const anonymous = await get(keeping, "manifests", "private/secret", "latest");
  expect(anonymous.status).toBe(401);
  const byDigest = await get(keeping, "manifests", "private/secret", secret.digest);
  expect(byDigest.status).toBe(401);
});
