/**
 * Upstream fallbacks in process (upstream/fallbacks.ts through the real
 * PassThrough and the cache), against two real registries holding the same
 * images: the primary, made unreachable (a closed port) or put in trouble (a
 * fault switch answering 503 or 429 in front of it), and the fallback. What a
 * real registry cannot do — serve wrong bytes for a digest, show the headers
 * it was sent — an in-process fake fallback does. Through the binary with
 * nginx in front of the primary: tests/integration/upstream/fallbacks.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { Value } from "@sinclair/typebox/value";
import { ConfigSchema } from "../../src/config/schema";
import { RegistryError } from "../../src/oci/errors";
import { PassThrough } from "../../src/proxy/pass-through";
import type { PullRequest } from "../../src/proxy/pull-request";
import { AuthDiscovery } from "../../src/upstream/auth-discovery";
import { UpstreamClient } from "../../src/upstream/client";
import { fallbackAccounts, fallbackName, fallbackUpstream, Fallbacks, isOutage, isTrouble } from "../../src/upstream/fallbacks";
import { TroubledUpstreams } from "../../src/upstream/troubled-upstreams";
import { upstreamTableFromConfig, type Upstream as UpstreamEntry } from "../../src/upstream/table";
import { UpstreamAuth } from "../../src/upstream/upstream-auth";
import { startFakeRegistry, type FakeRegistry } from "../support/cache/fake-registry";
import { digestOf, inProcessCache, readsOf, upstreamEntry, type InProcessCache } from "../support/cache/in-process";
import { sha256 } from "../support/proxied-upstream";
import { startTrouble, type Trouble } from "../support/trouble";
import { freePort, MediaType, startUpstream, type Upstream } from "../support/upstream";

let primary: Upstream;
let fallback: Upstream;
let trouble: Trouble;
let closedPort: number;
beforeAll(async () => {
  [primary, fallback] = await Promise.all([startUpstream({ onlyThroughProxy: true }), startUpstream({ onlyThroughProxy: true })]);
  trouble = await startTrouble(primary.registryUrl);
  closedPort = await freePort();
}, 120_000);
afterAll(async () => {
  await trouble?.stop();
  await Promise.all([primary?.stop(), fallback?.stop()]);
});

const uses: string[] = [];
function passThrough(troubled?: TroubledUpstreams): PassThrough {
  const client = new UpstreamClient({ headerMs: 5000, idleMs: 10_000, maxRedirects: 5 }, "docxy/test");
  const discovery = new AuthDiscovery(client, 5000);
  const fallbacks = new Fallbacks(
    {
      answered: (upstream, source) => uses.push(`answered ${upstream} ${source}`),
      tried: (upstream, source, outcome) => uses.push(`${outcome} ${upstream} ${source}`),
    },
    troubled,
  );
  return new PassThrough(client, discovery, new UpstreamAuth(client, discovery, new Map()), fallbacks);
}

/** The test registry at `url` as docxy's Docker Hub, with `fallbacks` (their realms discovered). */
function withFallbacks(url: string, ...fallbacks: string[]): UpstreamEntry {
  const entry = { ...upstreamEntry(primary), url };
  return { ...entry, fallbacks: fallbacks.map((f) => fallbackUpstream(entry, f)) };
}

function request(upstream: UpstreamEntry, kind: "manifests" | "blobs" | "tags", name: string, reference: string | undefined, init: { method?: string; headers?: Record<string, string> } = {}): PullRequest {
  const base = readsOf(primary).request(kind, name, reference, init);
  return { ...base, route: { upstream, via: "default" }, trace: {} };
}

const registryRequests = (registry: Upstream, needle: string) => readFileSync(registry.registryLog, "utf8").split("\n").filter((l) => l.includes(needle)).length;

describe("classification", () => {
  test("429 and 5xx are trouble; 401, 403 and 404 are answers", () => {
    expect([429, 500, 502, 503, 504].map(isTrouble)).toEqual([true, true, true, true, true]);
    expect([200, 206, 307, 401, 403, 404].map(isTrouble)).toEqual([false, false, false, false, false, false]);
  });

  test("an unreachable or timed-out upstream is an outage; docxy's refused account is not", () => {
    expect(isOutage(new RegistryError("UNAVAILABLE", "unreachable", { status: 502 }))).toBe(true);
    expect(isOutage(new RegistryError("DENIED", "refused"))).toBe(false);
    expect(isOutage(new Error("aborted"))).toBe(false);
  });

  test("a fallback keeps the upstream's registry and repository naming under a name of its own", () => {
    const hub = { name: "dockerhub", registry: "docker.io", url: "https://registry-1.docker.io", hosts: [], autoLibraryPrefix: true };
    const mirror = fallbackUpstream(hub, "https://mirror.gcr.io/");
    expect(mirror).toMatchObject({ name: fallbackName("dockerhub", "https://mirror.gcr.io"), registry: "docker.io", url: "https://mirror.gcr.io", autoLibraryPrefix: true });
    expect(mirror.authRealm).toBeUndefined(); // learnt from mirror.gcr.io's own challenge
    // Docker Hub as the fallback of an internal mirror keeps its written-out realm.
    expect(fallbackUpstream({ ...hub, url: "https://mirror.internal" }, "https://registry-1.docker.io").authRealm).toBe("https://auth.docker.io/token");
  });
});

describe("through the pass-through", () => {
  test("an unreachable primary: the manifest comes from the fallback, verified by digest, and the trace names it", async () => {
    const upstream = withFallbacks(`http://127.0.0.1:${closedPort}`, fallback.registryUrl);
    const read = request(upstream, "manifests", "acme/app", "v1", { headers: { accept: MediaType.dockerManifest } });
    uses.length = 0;
    const response = await passThrough().forward(read);
    expect(response.status).toBe(200);
    expect(response.headers.get("docker-content-digest")).toBe(primary.images.app.digest);
    expect((await digestOf(response)).digest).toBe(primary.images.app.digest);
    expect(read.trace?.source).toBe(fallback.registryUrl);
    expect(uses).toEqual([`served dockerhub ${new URL(fallback.registryUrl).host}`, `answered dockerhub ${new URL(fallback.registryUrl).host}`]);
  });

  for (const status of [503, 429]) {
    test(`a primary answering ${status}: the blob comes from the fallback (through its CDN), every byte`, async () => {
      await trouble.set({ kind: "status", status });
      try {
        const layer = primary.images.app.manifests[0]!.layers[0]!;
        const read = request(withFallbacks(trouble.url, fallback.registryUrl), "blobs", "acme/app", layer.digest);
        const response = await passThrough().forward(read);
        expect(response.status).toBe(200);
        expect(await digestOf(response)).toEqual({ digest: layer.digest, length: layer.size });
        expect(read.trace?.source).toBe(fallback.registryUrl);
        expect(trouble.faulted.some((line) => line.includes(layer.digest))).toBe(true);
      } finally {
        await trouble.set({ kind: "pass" });
      }
    });
  }

  test("a 404 from the primary is its answer: the fallback is never asked", async () => {
    const read = request(withFallbacks(primary.registryUrl, fallback.registryUrl), "manifests", "acme/absent", "v1");
    const response = await passThrough().forward(read);
    expect(response.status).toBe(404);
    expect(read.trace?.source).toBe(primary.registryUrl);
    expect(registryRequests(primary, "/v2/acme/absent/")).toBeGreaterThan(0);
    expect(registryRequests(fallback, "/v2/acme/absent/")).toBe(0);
  });

  test("a 401 from the primary (a private image) is its answer: the fallback is never asked", async () => {
    const read = request(withFallbacks(primary.registryUrl, fallback.registryUrl), "manifests", "private/secret", "latest");
    const response = await passThrough().forward(read);
    expect(response.status).toBe(401);
    expect(registryRequests(fallback, "/v2/private/secret/")).toBe(0);
  });

  test("a fallback's configured account is used there, from the configuration as services.ts reads it", async () => {
    const config = Value.Decode(ConfigSchema, Value.Default(ConfigSchema, {
      registry: { upstream_registry: `http://127.0.0.1:${closedPort}`, fallbacks: [{ url: fallback.registryUrl, credentials: [{ username: "alice", password_env: "PW" }] }] },
    }));
    const table = upstreamTableFromConfig(config);
    const accounts = new Map(fallbackAccounts(config, table, { PW: "secret" }));
    expect([...accounts.keys()]).toEqual([fallbackName("dockerhub", fallback.registryUrl)]);
    const client = new UpstreamClient({ headerMs: 5000, idleMs: 10_000, maxRedirects: 5 }, "docxy/test");
    const discovery = new AuthDiscovery(client, 5000);
    const proxy = new PassThrough(client, discovery, new UpstreamAuth(client, discovery, accounts));
    fallback.tokenLog.length = 0;
    const response = await proxy.forward(request(table.default, "manifests", "private/secret", "latest", { headers: { accept: MediaType.ociManifest } }));
    expect(response.status).toBe(200);
    expect(sha256(await response.arrayBuffer())).toBe(primary.images.secret.digest);
    expect(fallback.tokenLog.filter((r) => r.path === "/token").map((r) => r.user)).toEqual(["alice"]);
  });

  test("tag lists fall back too", async () => {
    const read = request(withFallbacks(`http://127.0.0.1:${closedPort}`, fallback.registryUrl), "tags", "library/manytags", undefined);
    const response = await passThrough().forward(read);
    expect(response.status).toBe(200);
    expect(((await response.json()) as { tags: string[] }).tags).toContain("t000");
  });

  test("when every fallback fails too, the client hears the primary's trouble, not a fallback's 404", async () => {
    await trouble.set({ kind: "status", status: 503 });
    try {
      const upstream = withFallbacks(trouble.url, `http://127.0.0.1:${closedPort}`, fallback.registryUrl);
      uses.length = 0;
      const response = await passThrough().forward(request(upstream, "manifests", "acme/absent", "v2"));
      expect(response.status).toBe(503);
      expect(((await response.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("UNAVAILABLE");
      const [closed, real] = [`127.0.0.1:${closedPort}`, new URL(fallback.registryUrl).host];
      expect(uses).toEqual([`failed dockerhub ${closed}`, `failed dockerhub ${real}`, `answered dockerhub ${new URL(trouble.url).host}`]);
    } finally {
      await trouble.set({ kind: "pass" });
    }
  });

  test("after the primary's 503, pulls go to the fallback without asking it; once the cooldown is over one asks it, and it serves again", async () => {
    let now = 0;
    const proxy = passThrough(new TroubledUpstreams({ now: () => now }));
    const upstream = withFallbacks(trouble.url, fallback.registryUrl);
    const { app } = primary.images;
    const layers = app.manifests[0]!.layers;
    await trouble.set({ kind: "status", status: 503 });
    try {
      const first = request(upstream, "manifests", "acme/app", "v1", { headers: { accept: app.mediaType } });
      expect((await digestOf(await proxy.forward(first))).digest).toBe(app.digest);
      expect(first.trace?.source).toBe(fallback.registryUrl);
      const asked = trouble.faulted.length;
      expect(asked).toBeGreaterThan(0);

      // Within the cooldown: the fallback serves, the primary hears nothing.
      uses.length = 0;
      const next = request(upstream, "blobs", "acme/app", layers[0]!.digest);
      expect(await digestOf(await proxy.forward(next))).toEqual({ digest: layers[0]!.digest, length: layers[0]!.size });
      expect(next.trace?.source).toBe(fallback.registryUrl);
      expect(trouble.faulted.length).toBe(asked);
      expect(uses).toEqual([`served dockerhub ${new URL(fallback.registryUrl).host}`, `answered dockerhub ${new URL(fallback.registryUrl).host}`]);

      // What the fallback lacks is still asked of the primary (its 503 is the answer).
      const absent = await proxy.forward(request(upstream, "manifests", "acme/absent", "v3"));
      expect(absent.status).toBe(503);
      expect(trouble.faulted.length).toBeGreaterThan(asked);

      // The primary back and the cooldown over: it is asked again, and serves.
      await trouble.set({ kind: "pass" });
      now += 30_000;
      const back = request(upstream, "blobs", "acme/app", layers[1]!.digest);
      expect(await digestOf(await proxy.forward(back))).toEqual({ digest: layers[1]!.digest, length: layers[1]!.size });
      expect(back.trace?.source).toBe(trouble.url);
    } finally {
      await trouble.set({ kind: "pass" });
    }
  });

  test("an unreachable primary with no fallback fails as before", async () => {
    const read = request(withFallbacks(`http://127.0.0.1:${closedPort}`), "manifests", "acme/app", "v1");
    await expect(passThrough().forward(read)).rejects.toMatchObject({ ociCode: "UNAVAILABLE", status: 502 });
  });
});

describe("with a fake fallback", () => {
  let fake: FakeRegistry;
  let cache: InProcessCache;
  beforeAll(async () => {
    fake = await startFakeRegistry();
    cache = await inProcessCache({ ...primary, registryUrl: `http://127.0.0.1:${closedPort}` });
  });
  afterAll(async () => {
    cache?.close();
    await fake?.stop();
  });

  test("the client's credentials never reach a fallback: docxy asks it with a token from the fallback's own realm", async () => {
    fake.log.length = 0;
    fake.handle((_, reply) => reply.send(200, { "content-type": MediaType.dockerManifest }, "{}"));
    const upstream = withFallbacks(`http://127.0.0.1:${closedPort}`, fake.url);
    const response = await passThrough().forward(request(upstream, "manifests", "acme/app", "v1", { headers: { authorization: "Bearer client-token-for-the-primary" } }));
    await response.arrayBuffer();
    expect(response.status).toBe(200);
    const asked = fake.log.filter((r) => r.path.startsWith("/v2/acme/app/"));
    expect(asked.length).toBe(1);
    expect(asked[0]!.headers.authorization).toBe("Bearer fake-token");
    expect(fake.log.some((r) => JSON.stringify(r.headers).includes("client-token-for-the-primary"))).toBe(false);
  });

  test("wrong bytes for a blob's digest are refused (the stream fails) and nothing is cached", async () => {
    const layer = primary.images.app.manifests[0]!.layers[0]!;
    const wrong = new Uint8Array(layer.size).fill(0x78);
    fake.log.length = 0;
    fake.handle((_, reply) => reply.send(200, { "content-type": "application/octet-stream" }, wrong));
    const upstream = withFallbacks(`http://127.0.0.1:${closedPort}`, fake.url);
    const first = await cache.front.answer(request(upstream, "blobs", "acme/app", layer.digest));
    expect(first.headers.get("x-cache")).toBe("MISS");
    await expect(first.arrayBuffer()).rejects.toThrow();
    expect(cache.index.getBlob(layer.digest)).toBeUndefined();
    // The client's stream fails before the failed fill has let go of its temp file: a request
    // arriving in between is passed through (no X-Cache), so wait for the fill to be gone.
    while (cache.coordination.isFilling(layer.digest)) await Bun.sleep(5);
    const second = await cache.front.answer(request(upstream, "blobs", "acme/app", layer.digest));
    expect(second.headers.get("x-cache")).toBe("MISS"); // fetched again, not a hit
    await expect(second.arrayBuffer()).rejects.toThrow();
    expect(fake.log.filter((r) => r.method === "GET" && r.path.includes(layer.digest)).length).toBe(2);
  });

  test("a manifest whose bytes do not match the digest asked for is refused and not cached", async () => {
    const { app } = primary.images;
    fake.handle((_, reply) => reply.send(200, { "content-type": app.mediaType, "docker-content-digest": app.digest }, '{"schemaVersion":2}'));
    const upstream = withFallbacks(`http://127.0.0.1:${closedPort}`, fake.url);
    const read = request(upstream, "manifests", "acme/app", app.digest, { headers: { accept: app.mediaType } });
    await expect(cache.front.answer(read)).rejects.toMatchObject({ ociCode: "MANIFEST_INVALID", status: 502 });
    expect(cache.index.getBlob(app.digest)).toBeUndefined();
  });
});
