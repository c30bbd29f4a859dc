/**
 * The admin API in process, against the real test registry: the token gate,
 * cache statistics, pre-warm, listing, purge, reload. The same API through
 * the binary (multi-arch pre-warm, repository purge):
 * tests/integration/http/routes/admin.test.ts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createApp } from "../../../src/http/app";
import type { Services } from "../../../src/services";
import { inProcessServices } from "../../support/services";
import { startUpstream, upstreamEntryToml, type Upstream } from "../../support/upstream";

const ADMIN = "admin-token-for-tests-0123456789";
let upstream: Upstream;
let services: Services;
let app: ReturnType<typeof createApp>;

beforeAll(async () => {
  upstream = await startUpstream();
  services = (await inProcessServices(`[admin]\ntoken = "${ADMIN}"\n${upstreamEntryToml(upstream)}`)).services;
  app = createApp(services);
}, 60_000);
afterAll(() => upstream?.stop());

const admin = (path: string, init: RequestInit = {}) =>
  app.handle(new Request(`http://127.0.0.1:5000/admin${path}`, { ...init, headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json", ...init.headers } }));

test("a wrong token is refused with a challenge; without a configured token the API does not exist", async () => {
  const refused = await admin("/cache", { headers: { authorization: "Bearer wrong" } });
  expect(refused.status).toBe(401);
  expect(refused.headers.get("www-authenticate")).toBe('Bearer realm="docxy-admin"');
  expect(((await refused.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("UNAUTHORIZED");
  const bare = createApp((await inProcessServices(upstreamEntryToml(upstream))).services);
  const missing = await bare.handle(new Request("http://127.0.0.1:5000/admin/cache", { headers: { authorization: `Bearer ${ADMIN}` } }));
  expect(missing.status).toBe(404);
});

test("pre-warm pulls an image into the cache step by step; the statistics and the tag list show it; a purge removes one blob", async () => {
  const image = upstream.images.app;
  const manifest = image.manifests[0]!;
  expect(await (await admin("/cache")).json()).toEqual({ enabled: true, dir: services.cache!.dir, bytes: 0, max_bytes: services.cache!.maxBytes, entries: 0, pinned_bytes: 0, pinned_entries: 0, fills_in_progress: 0 });

  const response = await admin("/prewarm", { method: "POST", body: JSON.stringify({ image: "acme/app:v1" }) });
  expect(response.headers.get("content-type")).toBe("application/x-ndjson");
  const lines = (await response.text()).trim().split("\n").map((line) => JSON.parse(line) as { digest?: string; done?: boolean; image?: string });
  expect(lines.at(-1)).toEqual({ done: true, image: "acme/app:v1" });
  const digests = [image.digest, manifest.config.digest, ...manifest.layers.map((l) => l.digest)];
  expect(lines.slice(0, -1).map((l) => l.digest)).toEqual(digests);

  const stats = (await (await admin("/cache")).json()) as { entries: number; bytes: number };
  expect(stats.entries).toBe(digests.length);
  expect(stats.bytes).toBe(image.bytes.length + manifest.config.size + manifest.layers.reduce((n, l) => n + l.size, 0));
  const tags = (await (await admin("/cache/tags")).json()) as { upstream: string; repository: string; tag: string; digest: string }[];
  expect(tags.map((t) => [t.upstream, t.repository, t.tag, t.digest])).toEqual([["dockerhub", "acme/app", "v1", image.digest]]);

  const layer = manifest.layers[0]!.digest;
  expect(await (await admin(`/cache/blobs/${layer}`, { method: "DELETE" })).json()).toEqual({ removed: [layer] });
  expect(await (await admin(`/cache/blobs/${layer}`, { method: "DELETE" })).json()).toEqual({ removed: [] });
  expect(((await (await admin("/cache")).json()) as { entries: number }).entries).toBe(digests.length - 1);
  const invalid = await admin("/cache/blobs/sha256:nothex", { method: "DELETE" });
  expect(invalid.status).toBe(400);
  expect(((await invalid.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("DIGEST_INVALID");
});

test("a purge refused by a fleet's shared bucket answers in registry JSON: 409 DENIED while a client reads the blob, 503 UNAVAILABLE while Redis does not answer; a repository purge lists what it kept", async () => {
  const cache = services.cache!;
  const purge = cache.purge;
  const digest = `sha256:${"ab".repeat(32)}`;
  try {
    cache.purge = async () => "in-use";
    const busy = await admin(`/cache/blobs/${digest}`, { method: "DELETE" });
    expect(busy.status).toBe(409);
    const error = ((await busy.json()) as { errors: { code: string; message: string }[] }).errors[0]!;
    expect(error.code).toBe("DENIED");
    expect(error.message).toContain("is being read");
    cache.purge = async () => "unavailable";
    const away = await admin(`/cache/blobs/${digest}`, { method: "DELETE" });
    expect(away.status).toBe(503);
    expect(((await away.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("UNAVAILABLE");

    // A repository's orphans: one read somewhere (kept), the others purged.
    const image = upstream.images.app;
    await (await admin("/prewarm", { method: "POST", body: JSON.stringify({ image: "acme/app:v1" }) })).text();
    const busyLayer = image.manifests[0]!.layers[1]!.digest;
    cache.purge = async (d) => (d === busyLayer ? "in-use" : purge(d));
    const answer = (await (await admin("/cache/repositories?upstream=dockerhub&repository=acme/app", { method: "DELETE" })).json()) as {
      removed: string[];
      kept?: { digest: string; reason: string }[];
    };
    expect(answer.kept).toEqual([{ digest: busyLayer, reason: "in-use" }]);
    expect(answer.removed).not.toContain(busyLayer);
    expect(answer.removed.length).toBeGreaterThan(0);
  } finally {
    cache.purge = purge;
  }
});

test("reload re-reads the certificate: none without HTTPS", async () => {
  const response = await admin("/reload", { method: "POST" });
  expect(response.status).toBe(200);
  expect(await response.json()).toEqual({ certificate: "none" });
});
