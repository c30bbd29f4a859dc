/**
 * The manifest cache. Against the real registry: a cached index never reaches
 * a client whose Accept does not take it, a tag resolves per accept class,
 * and a HEAD by tag within its TTL costs the upstream nothing. Against a fake
 * upstream: with `tag_ttl = "0s"` every tag is revalidated, and a 429, a 5xx
 * or a hang is answered from the cache as STALE with a Warning; with nothing
 * cached the upstream's 429 comes back as registry JSON. A manifest over
 * 4 MiB without a Content-Length is refused as registry JSON and not stored.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { sendChunked, startFakeRegistry, type FakeRegistry, type FakeReply, type FakeRequest } from "../../support/cache/fake-registry";
import {
  ALL_MANIFESTS,
  docxyToken,
  registryLines,
  registryLogSettled,
  registryToml,
  sha256,
  startCachingDocxy,
  type CachingDocxy,
} from "../../support/cache/harness";
import { MediaType, startUpstream, type Upstream } from "../../support/upstream";

describe("against the real registry", () => {
  let upstream: Upstream;
  let docxy: CachingDocxy;
  beforeAll(async () => {
    upstream = await startUpstream({ onlyThroughProxy: true });
    docxy = await startCachingDocxy(registryToml(upstream));
  }, 60_000);
  afterAll(async () => {
    await docxy?.stop();
    await upstream?.stop();
  });

  async function get(path: string, accept: string, method = "GET") {
    const repository = path.split("/manifests/")[0]!;
    const response = await fetch(`${docxy.url}/v2/${path}`, {
      method,
      headers: { accept, authorization: `Bearer ${await docxyToken(docxy.url, repository)}` },
    });
    const bytes = new Uint8Array(await response.arrayBuffer());
    return { response, bytes, cache: response.headers.get("x-cache"), digest: response.headers.get("docker-content-digest") };
  }

  test("an OCI index cached for one client never reaches a client that accepts only Docker manifests", async () => {
    const { nginx } = upstream.images;
    const cold = await get("library/nginx/manifests/latest", ALL_MANIFESTS);
    expect(cold.response.status).toBe(200);
    expect(cold.cache).toBe("MISS");
    expect(sha256(cold.bytes)).toBe(nginx.digest);
    expect(cold.response.headers.get("content-type")).toBe(MediaType.ociIndex);
    const warm = await get(`library/nginx/manifests/${nginx.digest}`, ALL_MANIFESTS);
    expect({ status: warm.response.status, cache: warm.cache, digest: sha256(warm.bytes) }).toEqual({ status: 200, cache: "HIT", digest: nginx.digest });

    for (const reference of ["latest", nginx.digest]) {
      const narrow = await get(`library/nginx/manifests/${reference}`, MediaType.dockerManifest);
      expect(narrow.response.status).toBe(404); // what distribution 2.8 answers such a client itself
      expect(JSON.parse(new TextDecoder().decode(narrow.bytes)).errors[0].code).toBe("MANIFEST_UNKNOWN");
      expect(narrow.response.headers.get("content-type")).not.toBe(MediaType.ociIndex);
    }
    // …and the index is still served to those who take it.
    expect((await get("library/nginx/manifests/latest", ALL_MANIFESTS)).cache).toBe("HIT");
  });

  test("a tag resolves per accept class: a Docker manifest list for some, the registry's amd64 manifest for others", async () => {
    const { alpine } = upstream.images;
    const list = await get("library/alpine/manifests/3.20", ALL_MANIFESTS);
    expect(sha256(list.bytes)).toBe(alpine.digest);
    const single = await get("library/alpine/manifests/3.20", MediaType.dockerManifest);
    expect(single.response.status).toBe(200);
    expect(sha256(single.bytes)).toBe(alpine.manifests[0]!.digest);
    expect(single.response.headers.get("content-type")).toBe(MediaType.dockerManifest);
    const again = await get("library/alpine/manifests/3.20", MediaType.dockerManifest);
    expect({ cache: again.cache, digest: sha256(again.bytes) }).toEqual({ cache: "HIT", digest: alpine.manifests[0]!.digest });
    const listAgain = await get("library/alpine/manifests/3.20", ALL_MANIFESTS);
    expect({ cache: listAgain.cache, digest: sha256(listAgain.bytes) }).toEqual({ cache: "HIT", digest: alpine.digest });
  });

  test("HEAD by tag within its TTL is answered from the cache: exact length and digest, no HEAD upstream", async () => {
    const { nginx } = upstream.images;
    await get("library/nginx/manifests/latest", ALL_MANIFESTS); // cached (and the repository's access known) by now
    await registryLogSettled(upstream);
    const heads = () => registryLines(upstream, /"HEAD \/v2\/library\/nginx\/manifests\/latest /).length;
    const before = heads();
    const head = await get("library/nginx/manifests/latest", ALL_MANIFESTS, "HEAD");
    expect(head.response.status).toBe(200);
    expect(head.cache).toBe("HIT");
    expect(head.digest).toBe(nginx.digest);
    expect(head.response.headers.get("content-length")).toBe(String(nginx.bytes.length));
    expect(head.response.headers.get("content-type")).toBe(MediaType.ociIndex);
    expect(head.bytes.length).toBe(0);
    await registryLogSettled(upstream);
    expect(heads()).toBe(before);
  });
});

describe("stale-if-error against a fake upstream (tag_ttl 0s)", () => {
  type Mode = "ok" | "429" | "503" | "hang";
  const modes = new Map<string, Mode>();
  const manifests = new Map<string, Uint8Array>();
  const manifestOf = (repository: string) => {
    let bytes = manifests.get(repository);
    if (!bytes) {
      const config = { mediaType: MediaType.dockerConfig, digest: `sha256:${"a".repeat(64)}`, size: 2 };
      bytes = new TextEncoder().encode(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.dockerManifest, config, layers: [], annotations: { repository } }));
      manifests.set(repository, bytes);
    }
    return bytes;
  };

  async function answer(request: FakeRequest, reply: FakeReply): Promise<void> {
    const match = /^\/v2\/(.+)\/manifests\/([^/?]+)$/.exec(request.path);
    if (!match) return reply.send(404, { "content-type": "application/json" }, "{}");
    const [, repository, reference] = match as unknown as [string, string, string];
    const mode = modes.get(repository) ?? "ok";
    if (mode === "hang") return new Promise(() => {});
    if (mode === "429") return reply.send(429, { "retry-after": "42", "content-type": "text/plain" }, "Too Many Requests\n");
    if (mode === "503") return reply.send(503, { "content-type": "text/html" }, "<html>down</html>");
    const bytes = manifestOf(repository);
    if (reference !== "v1" && reference !== sha256(bytes)) return reply.send(404, { "content-type": "application/json" }, "{}");
    reply.send(200, { "content-type": MediaType.dockerManifest, "docker-content-digest": sha256(bytes) }, bytes);
  }

  let fake: FakeRegistry;
  let docxy: CachingDocxy;
  beforeAll(async () => {
    fake = await startFakeRegistry(answer);
    docxy = await startCachingDocxy(`${fake.toml}[upstream]\nheader_timeout = 1\n[cache]\ntag_ttl = "0s"\n`);
  }, 30_000);
  afterAll(async () => {
    await docxy?.stop();
    await fake?.stop();
  });

  const pull = (repository: string, reference = "v1") => fetch(`${docxy.url}/v2/${repository}/manifests/${reference}`, { headers: { accept: ALL_MANIFESTS } });

  async function expectStale(repository: string) {
    const response = await pull(repository);
    const body = new Uint8Array(await response.arrayBuffer());
    expect({ status: response.status, cache: response.headers.get("x-cache") }).toEqual({ status: 200, cache: "STALE" });
    expect(response.headers.get("warning")).toMatch(/^110 /);
    expect(sha256(body)).toBe(sha256(manifestOf(repository)));
    expect(response.headers.get("docker-content-digest")).toBe(sha256(manifestOf(repository)));
  }

  async function cache(repository: string) {
    const first = await pull(repository);
    expect({ status: first.status, cache: first.headers.get("x-cache"), digest: sha256(await first.arrayBuffer()) }).toEqual({
      status: 200,
      cache: "MISS",
      digest: sha256(manifestOf(repository)),
    });
    const second = await pull(repository); // tag_ttl 0s: revalidated with a HEAD
    expect(second.headers.get("x-cache")).toBe("REVALIDATED");
    await second.arrayBuffer();
  }

  test("a 429 for a cached tag: the last known manifest, STALE, with a Warning", async () => {
    await cache("acme/limited");
    modes.set("acme/limited", "429");
    await expectStale("acme/limited");
  });

  test("a 429 for a cached tag whose repository docxy already knows to be public: STALE", async () => {
    await cache("acme/known");
    const hit = await pull("acme/known", sha256(manifestOf("acme/known"))); // a HIT by digest checks the repository's access
    expect(hit.headers.get("x-cache")).toBe("HIT");
    modes.set("acme/known", "429");
    await expectStale("acme/known");
  });

  test("a 503 with an HTML page for a cached tag: STALE", async () => {
    await cache("acme/flaky");
    modes.set("acme/flaky", "503");
    await expectStale("acme/flaky");
  });

  test("an upstream that hangs on the tag's HEAD: STALE once the header timeout has passed", async () => {
    await cache("acme/hanging");
    modes.set("acme/hanging", "hang");
    await expectStale("acme/hanging");
  }, 20_000);

  test("an upstream that hangs, for a cached tag whose repository docxy already knows to be public: STALE", async () => {
    await cache("acme/known-hang");
    expect((await pull("acme/known-hang", sha256(manifestOf("acme/known-hang")))).headers.get("x-cache")).toBe("HIT");
    modes.set("acme/known-hang", "hang");
    await expectStale("acme/known-hang");
  }, 20_000);

  test("a 429 with nothing cached comes back as registry JSON TOOMANYREQUESTS with Retry-After", async () => {
    modes.set("acme/never", "429");
    const response = await pull("acme/never");
    expect(response.status).toBe(429);
    expect(response.headers.get("retry-after")).toBe("42");
    expect(response.headers.get("content-type")).toContain("application/json");
    const body = await response.json();
    expect((body as { errors: { code: string }[] }).errors[0]!.code).toBe("TOOMANYREQUESTS");
    expect(response.headers.get("x-cache")).toBeNull();
  });
});

describe("the 4 MiB manifest cap against a fake upstream that sends chunked manifests", () => {
  const MiB = 1024 * 1024;
  const small = new TextEncoder().encode(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.dockerManifest, layers: [] }));
  const ranged = new TextEncoder().encode(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.dockerManifest, layers: [], annotations: { ranged: "yes" } }));
  const HUGE_DIGEST = `sha256:${"e".repeat(64)}`;
  const sent: Promise<number>[] = [];
  let fake: FakeRegistry;
  let docxy: CachingDocxy;
  beforeAll(async () => {
    fake = await startFakeRegistry((request, reply) => {
      const path = new URL(request.path, "http://x").pathname;
      if (path.startsWith("/v2/acme/small/manifests/")) {
        if (request.method === "HEAD") return reply.send(200, { "content-type": MediaType.dockerManifest, "docker-content-digest": sha256(small) }, small);
        return void sendChunked(reply, 200, { "content-type": MediaType.dockerManifest, "docker-content-digest": sha256(small) }, small);
      }
      if (path.startsWith("/v2/acme/ranged/manifests/")) {
        // An upstream that honours Range on manifests, as distribution does not.
        const headers = { "content-type": MediaType.dockerManifest, "docker-content-digest": sha256(ranged) };
        if (request.method === "GET" && request.headers.range) {
          return reply.send(206, { ...headers, "content-range": `bytes 0-9/${ranged.length}` }, ranged.subarray(0, 10));
        }
        return reply.send(200, headers, ranged);
      }
      if (!path.startsWith("/v2/acme/huge/manifests/")) return reply.send(404, { "content-type": "application/json" }, "{}");
      // The HEAD claims a small manifest; the GET then never ends.
      const headers = { "content-type": MediaType.dockerManifest, "docker-content-digest": HUGE_DIGEST };
      if (request.method === "HEAD") return reply.send(200, { ...headers, "content-length": "100" });
      sent.push(sendChunked(reply, 200, headers, 64 * MiB));
    });
    docxy = await startCachingDocxy(fake.toml);
  }, 30_000);
  afterAll(async () => {
    await docxy?.stop();
    await fake?.stop();
  });

  const storedFiles = () => {
    const dir = join(docxy.cacheDir, "blobs", "sha256");
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  };

  test.each(["v1", HUGE_DIGEST])("by %s: 502 MANIFEST_INVALID as registry JSON, the upstream cut off, nothing stored", async (reference) => {
    sent.length = 0;
    const response = await fetch(`${docxy.url}/v2/acme/huge/manifests/${reference}`, { headers: { accept: ALL_MANIFESTS } });
    expect(response.status).toBe(502);
    expect(response.headers.get("content-type")).toContain("application/json");
    const body = (await response.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]!.code).toBe("MANIFEST_INVALID");
    expect(body.errors[0]!.message).toContain("over 4 MiB");
    expect(await sent[0]).toBeLessThan(64 * MiB);
    expect(storedFiles()).toEqual([]);
  });

  test("the process goes on serving: a small chunked manifest is a MISS, then a HIT streamed from disk with its exact length", async () => {
    const get = () => fetch(`${docxy.url}/v2/acme/small/manifests/v1`, { headers: { accept: ALL_MANIFESTS } });
    const miss = await get();
    expect({ status: miss.status, cache: miss.headers.get("x-cache"), digest: sha256(await miss.arrayBuffer()) }).toEqual({ status: 200, cache: "MISS", digest: sha256(small) });
    const hit = await get();
    expect(hit.headers.get("x-cache")).toBe("HIT");
    expect(hit.headers.get("content-length")).toBe(String(small.length));
    expect(sha256(await hit.arrayBuffer())).toBe(sha256(small));
    expect(storedFiles()).toEqual([sha256(small).slice("sha256:".length)]);
  });

  test("a client's Range (containerd 2.x sends bytes=0-) is not sent upstream: the manifest is fetched whole, verified and stored", async () => {
    for (const range of ["bytes=0-", "bytes=0-9"]) {
      const response = await fetch(`${docxy.url}/v2/acme/ranged/manifests/${range === "bytes=0-" ? "v1" : sha256(ranged)}`, { headers: { accept: ALL_MANIFESTS, range } });
      expect({ range, status: response.status, digest: sha256(await response.arrayBuffer()) }).toEqual({ range, status: 200, digest: sha256(ranged) });
    }
    const gets = fake.log.filter((r) => r.method === "GET" && r.path.includes("/acme/ranged/"));
    expect(gets.length).toBeGreaterThan(0);
    expect(gets.map((r) => r.headers.range ?? null)).toEqual(gets.map(() => null));
  });
});
