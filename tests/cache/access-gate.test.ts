/**
 * The access gate in process (cache/access-gate.ts) against the real test
 * registry (token auth; `private/` readable only by a logged-in user), with
 * the remote counted: what it lets through from the cache, what it asks the
 * upstream, and the refusal a client gets. Through the binary, with offline
 * tokens and outages: tests/integration/cache/access-gate.test.ts.
 */
import { expect, test } from "bun:test";
import { inProcessSuite, type InProcessCache } from "../support/cache/in-process";
import type { Upstream } from "../support/upstream";

let upstream: Upstream;
let cache: InProcessCache;
inProcessSuite((started) => ({ upstream, cache } = started));

const blob = (repository: string, digest: string, headers: Record<string, string> = {}) => cache.request("blobs", repository, digest, { headers });

test("content linked to a repository known to be public is served without asking the upstream", async () => {
  const layer = upstream.images.alpine.manifests[0]!.layers[0]!;
  cache.index.putLink("dockerhub", "library/alpine", layer.digest);
  cache.index.putRepositoryAccess("dockerhub", "library/alpine", true);
  expect(await cache.gate.check(blob("library/alpine", layer.digest), layer.digest)).toBeUndefined();
  expect(cache.remote.callsFor(layer.digest)).toEqual([]);
});

test("a digest asked for under a repository it is not in is refused with the upstream's 404, after one HEAD as docxy", async () => {
  const layer = upstream.images.alpine.manifests[0]!.layers[0]!;
  const refusal = await cache.gate.check(blob("acme/app", layer.digest), layer.digest);
  expect(refusal?.status).toBe(404);
  expect(((await refusal!.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("BLOB_UNKNOWN");
  expect(cache.remote.callsFor(layer.digest)).toEqual([{ kind: "fetch", method: "HEAD", path: `/v2/acme/app/blobs/${layer.digest}`, range: null }]);
  expect(cache.index.hasLink("dockerhub", "acme/app", layer.digest)).toBe(false);
});

test("private content: no token gets our challenge and the repository is known private; a token that can read it proves access once per TTL", async () => {
  const layer = upstream.images.secret.manifests[0]!.layers[0]!;
  const refusal = await cache.gate.check(blob("private/secret", layer.digest), layer.digest);
  expect(refusal?.status).toBe(401);
  expect(refusal?.headers.get("www-authenticate")).toContain('realm="http://docxy.test/auth/dockerhub/token"');
  expect(cache.index.getRepositoryAccess("dockerhub", "private/secret")?.public).toBe(false);

  const authorization = `Bearer ${await upstream.token("private/secret", "alice")}`;
  const calls = cache.remote.callsFor(layer.digest).length;
  expect(await cache.gate.check(blob("private/secret", layer.digest, { authorization }), layer.digest)).toBeUndefined();
  // As docxy (refused), then with the client's own token (allowed): the proof is remembered.
  expect(cache.remote.callsFor(layer.digest).slice(calls).map((call) => call.method)).toEqual(["HEAD", "HEAD"]);
  expect(cache.index.hasLink("dockerhub", "private/secret", layer.digest)).toBe(true);

  const again = cache.remote.callsFor(layer.digest).length;
  expect(await cache.gate.check(blob("private/secret", layer.digest, { authorization }), layer.digest)).toBeUndefined();
  expect(cache.remote.callsFor(layer.digest).slice(again).map((call) => call.method)).toEqual(["HEAD"]); // docxy's own HEAD only
  expect(await cache.gate.check(blob("private/secret", layer.digest), layer.digest)).toHaveProperty("status", 401);
});

test("learn() records the link at once and whether docxy itself can read the repository in the background", async () => {
  const layer = upstream.images.nginx.manifests[0]!.layers[0]!;
  cache.gate.learn(blob("library/nginx", layer.digest), layer.digest);
  expect(cache.index.hasLink("dockerhub", "library/nginx", layer.digest)).toBe(true);
  while (!cache.index.getRepositoryAccess("dockerhub", "library/nginx")) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(cache.index.getRepositoryAccess("dockerhub", "library/nginx")?.public).toBe(true);
  expect(await cache.gate.check(blob("library/nginx", layer.digest), layer.digest)).toBeUndefined();
  expect(cache.remote.callsFor(layer.digest).map((call) => call.method)).toEqual(["HEAD"]); // the background one
});
