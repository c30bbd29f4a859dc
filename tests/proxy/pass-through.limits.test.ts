/**
 * The pass-through path's body caps (proxy/pass-through.ts relay, and the
 * token docxy fetches for itself in upstream/upstream-auth.ts), in process:
 * the real PassThrough, client, discovery and upstream auth against a raw-TCP
 * fake upstream that answers with chunked bodies of any size. The same caps
 * on the cache path are in tests/integration/cache/manifest-cache.test.ts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { RegistryError } from "../../src/oci/errors";
import { PassThrough } from "../../src/proxy/pass-through";
import type { PullRequest } from "../../src/proxy/pull-request";
import type { PullPath } from "../../src/oci/paths";
import { AuthDiscovery } from "../../src/upstream/auth-discovery";
import { UpstreamClient } from "../../src/upstream/client";
import type { Upstream } from "../../src/upstream/table";
import { UpstreamAuth } from "../../src/upstream/upstream-auth";
import { sendChunked, startFakeRegistry, type FakeRegistry } from "../support/cache/fake-registry";

const MiB = 1024 * 1024;
const MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const DIGEST = "sha256:" + "b".repeat(64);
const sent = new Map<string, Promise<number>>();
let fake: FakeRegistry;
beforeAll(async () => {
  fake = await startFakeRegistry((request, reply) => {
    const path = new URL(request.path, "http://x").pathname;
    const chunked = (status: number, headers: Record<string, string>, body: Uint8Array | number) => sent.set(path, sendChunked(reply, status, headers, body));
    if (path === "/v2/acme/huge/manifests/v1") return void chunked(200, { "content-type": MANIFEST }, 32 * MiB);
    if (path === "/v2/acme/small/manifests/v1") return void chunked(200, { "content-type": MANIFEST }, new TextEncoder().encode('{"schemaVersion":2}'));
    if (path === "/v2/acme/huge/tags/list") return void chunked(200, { "content-type": "application/json" }, 17 * MiB);
    if (path === "/v2/acme/small/tags/list") return void chunked(200, { "content-type": "application/json" }, new TextEncoder().encode('{"name":"acme/small","tags":["v1"]}'));
    if (path === `/v2/acme/huge/referrers/${DIGEST}`) return void chunked(200, { "content-type": "application/vnd.oci.image.index.v1+json" }, 17 * MiB);
    if (path === "/v2/acme/huge-error/manifests/v1") return void chunked(404, { "content-type": "application/json" }, 128 * 1024);
    if (path === "/v2/acme/lying/blobs/" + DIGEST) return void chunked(200, { "content-type": "application/octet-stream", "content-length": "3" }, 5 * MiB);
    if (path === "/huge-token") return void chunked(200, { "content-type": "application/json" }, 2 * MiB);
    if (path === "/v2/acme/as-docxy/manifests/v1") return reply.send(200, { "content-type": MANIFEST }, "{}");
    reply.send(404, { "content-type": "application/json" }, "{}");
  });
});
afterAll(() => fake?.stop());

const client = new UpstreamClient({ headerMs: 5000, idleMs: 10_000, maxRedirects: 3 }, "docxy/test");
const discovery = new AuthDiscovery(client, 5000);
const proxy = new PassThrough(client, discovery, new UpstreamAuth(client, discovery, new Map()));
const upstream = (): Upstream => ({ name: "fake", registry: "fake.io", url: fake.url, hosts: [], autoLibraryPrefix: false, authRealm: `${fake.url}/token`, authService: "fake" });

function request(path: PullPath, identity: PullRequest["identity"] = "client", route = { upstream: upstream(), via: "default" as const }): PullRequest {
  return { path, identity, method: "GET", query: new URLSearchParams(), headers: new Headers({ accept: MANIFEST }), route, origin: "http://docxy.test" };
}

async function refusal(promise: Promise<unknown>): Promise<RegistryError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof RegistryError)) throw new Error(`expected a RegistryError, got ${String(error)}`);
  expect(error.status).toBe(502);
  return error;
}

test("a chunked manifest over 4 MiB is refused as MANIFEST_INVALID, not relayed, and the upstream is cut off", async () => {
  const error = await refusal(proxy.forward(request({ name: "acme/huge", kind: "manifests", reference: "v1" })));
  expect(error.ociCode).toBe("MANIFEST_INVALID");
  expect(error.message).toContain("over 4 MiB");
  expect(await sent.get("/v2/acme/huge/manifests/v1")).toBeLessThan(32 * MiB);
});

test("a chunked manifest within the cap is relayed with its length", async () => {
  const response = await proxy.forward(request({ name: "acme/small", kind: "manifests", reference: "v1" }));
  expect(response.status).toBe(200);
  expect(response.headers.get("content-length")).toBe("19");
  expect(await response.text()).toBe('{"schemaVersion":2}');
});

test("a chunked tag list or referrers index over 16 MiB is refused as UNAVAILABLE", async () => {
  for (const path of [{ name: "acme/huge", kind: "tags" } as const, { name: "acme/huge", kind: "referrers", reference: DIGEST } as const]) {
    const error = await refusal(proxy.forward(request(path)));
    expect(error.ociCode).toBe("UNAVAILABLE");
    expect(error.message).toContain("over 16 MiB");
  }
  const small = await proxy.forward(request({ name: "acme/small", kind: "tags" }));
  expect(await small.json()).toEqual({ name: "acme/small", tags: ["v1"] });
});

test("an error body over 64 KiB is replaced by our registry JSON with the upstream's status", async () => {
  const response = await proxy.forward(request({ name: "acme/huge-error", kind: "manifests", reference: "v1" }));
  expect(response.status).toBe(404);
  const body = await response.text();
  expect(body.length).toBeLessThan(1024);
  expect(JSON.parse(body).errors[0].code).toBe("MANIFEST_UNKNOWN");
});

test("a blob is never capped, and a Content-Length beside Transfer-Encoding is not passed on", async () => {
  const response = await proxy.forward(request({ name: "acme/lying", kind: "blobs", reference: DIGEST }));
  expect(response.headers.get("content-length")).toBeNull();
  expect((await response.arrayBuffer()).byteLength).toBe(5 * MiB);
});

test("docxy's own token: a chunked token response over 1 MiB is refused, the pull is not made", async () => {
  const route = { upstream: { ...upstream(), authRealm: `${fake.url}/huge-token` }, via: "default" as const };
  const before = fake.log.length;
  const error = await refusal(proxy.forward(request({ name: "acme/as-docxy", kind: "manifests", reference: "v1" }, "proxy", route)));
  expect(error.ociCode).toBe("UNAVAILABLE");
  expect(error.message).toContain("token response over 1 MiB");
  expect(fake.log.slice(before).map((r) => r.path)).toEqual(["/huge-token?service=fake&scope=repository%3Aacme%2Fas-docxy%3Apull"]);
});
