/**
 * `[cache] keep_deleted` through the binary, against the real registry with
 * deletion enabled: skopeo copies an image through docxy, the image is
 * deleted upstream, and once tag_ttl has passed (polled, not timed) the
 * docxy that keeps deleted content still serves the same digests, with a
 * Warning and one log line, while the one without it answers 404
 * MANIFEST_UNKNOWN. A private image stays only for the credentials that
 * pulled it. In process: tests/cache/deleted-tags.test.ts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import {
  ALL_MANIFESTS,
  docxyToken,
  registryLines,
  registryLogSettled,
  registryToml,
  sha256,
  startCachingDocxy,
  waitFor,
  type CachingDocxy,
} from "../../support/cache/harness";
import { deleteManifest } from "../../support/push";
import { skopeoCopy, skopeoCopyOk } from "../../support/skopeo";
import { startUpstream, type Upstream } from "../../support/upstream";

let upstream: Upstream;
let keeping: CachingDocxy;
let plain: CachingDocxy;
beforeAll(async () => {
  upstream = await startUpstream({ onlyThroughProxy: true });
  const config = (keep: boolean) => `${registryToml(upstream)}\n[cache]\ntag_ttl = "1s"\nkeep_deleted = ${keep}\n`;
  [keeping, plain] = await Promise.all([startCachingDocxy(config(true)), startCachingDocxy(config(false))]);
}, 60_000);
afterAll(async () => {
  await Promise.all([keeping?.stop(), plain?.stop()]);
  await upstream?.stop();
});

const host = (docxy: CachingDocxy) => new URL(docxy.url).host;
async function headTag(docxy: CachingDocxy): Promise<Response> {
  const authorization = `Bearer ${await docxyToken(docxy.url, "acme/app")}`;
  return fetch(`${docxy.url}/v2/acme/app/manifests/v1`, { method: "HEAD", headers: { accept: ALL_MANIFESTS, authorization } });
}

test("an image deleted upstream: skopeo still copies it, same digests, from the docxy that keeps it; the other answers MANIFEST_UNKNOWN", async () => {
  const app = upstream.images.app;
  const before = await Promise.all([keeping, plain].map((docxy) => skopeoCopyOk(host(docxy), "acme/app:v1")));
  expect(before[0]!["manifest.json"]).toBe(app.digest);
  expect(before[1]).toEqual(before[0]!);
  // docxy learns, with one HEAD of its own after the fetch, that acme/app is public: settled before the upstream changes.
  await registryLogSettled(upstream);
  await waitFor(() => registryLines(upstream, new RegExp(`"HEAD /v2/acme/app/manifests/${app.digest} `)).length >= 2, "docxy's access checks");

  const alice = { authorization: `Bearer ${await upstream.token("repository:acme/app:delete", "alice")}` };
  await deleteManifest(upstream.registryUrl, "acme/app", app.digest, alice);

  // Past tag_ttl each docxy asks the upstream again: polled until it has, then asserted.
  await waitFor(async () => (await headTag(keeping)).headers.has("warning"), "the kept answer", 15_000);
  await waitFor(async () => (await headTag(plain)).status === 404, "the 404", 15_000);

  const head = await headTag(keeping);
  expect([head.status, head.headers.get("docker-content-digest"), head.headers.get("x-cache")]).toEqual([200, app.digest, "STALE"]);
  expect(head.headers.get("warning")).toBe('110 docxy "Response is Stale: docker.io/acme/app:v1 is no longer in the upstream"');
  expect(await skopeoCopyOk(host(keeping), "acme/app:v1")).toEqual(before[0]!);
  expect(keeping.log().match(/tag deleted upstream/g)).toHaveLength(1);

  const gone = await skopeoCopy(host(plain), "acme/app:v1");
  expect(gone.code).not.toBe(0);
  expect(gone.stderr).toMatch(/manifest unknown/i);
  const authorization = `Bearer ${await docxyToken(plain.url, "acme/app")}`;
  const get = await fetch(`${plain.url}/v2/acme/app/manifests/v1`, { headers: { accept: ALL_MANIFESTS, authorization } });
  expect(get.status).toBe(404);
  expect(((await get.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("MANIFEST_UNKNOWN");
  expect(plain.log()).not.toContain("tag deleted upstream");
}, 60_000);

test("a private image deleted upstream stays for the credentials that pulled it, with a new token of theirs, and is 401 for anyone else", async () => {
  const secret = upstream.images.secret;
  const alice = `Basic ${Buffer.from("alice:secret").toString("base64")}`;
  const get = async (authorization?: string) => {
    const headers: Record<string, string> = { accept: ALL_MANIFESTS };
    if (authorization) headers.authorization = `Bearer ${await docxyToken(keeping.url, "private/secret", authorization)}`;
    const response = await fetch(`${keeping.url}/v2/private/secret/manifests/latest`, { headers });
    return { response, digest: sha256(new Uint8Array(await response.arrayBuffer())) };
  };
  expect((await get(alice)).digest).toBe(secret.digest);
  const push = { authorization: `Bearer ${await upstream.token("repository:private/secret:delete", "alice")}` };
  await deleteManifest(upstream.registryUrl, "private/secret", secret.digest, push);

  // Each poll logs in again: a new token, the same credentials behind it.
  await waitFor(async () => (await get(alice)).response.headers.has("warning"), "the kept answer", 15_000);
  const kept = await get(alice);
  expect([kept.response.status, kept.digest, kept.response.headers.get("x-cache")]).toEqual([200, secret.digest, "STALE"]);
  expect((await get()).response.status).toBe(401);
}, 60_000);
