/**
 * The whole application in process: createApp(createServices(config)) driven
 * with app.handle(), no socket, against the real test registry (token auth,
 * blobs redirected to a CDN). What it answers here is what every port
 * answers; the listeners around it are tested in tests/integration/server.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { createApp } from "../../src/http/app";
import { BUILTIN_UPSTREAMS } from "../../src/upstream/builtins";
import { inProcessServices } from "../support/services";
import { startUpstream, upstreamEntryToml, type Upstream } from "../support/upstream";

const ORIGIN = "http://127.0.0.1:5000";
let upstream: Upstream;
let app: ReturnType<typeof createApp>;

beforeAll(async () => {
  upstream = await startUpstream();
  // Only the test registry: the other built-ins would make /health depend on the internet.
  const others = BUILTIN_UPSTREAMS.filter((b) => b.enabled && b.name !== "dockerhub")
    .map((b) => `[[registry.upstreams]]\nname = "${b.name}"\nenabled = false\n`)
    .join("");
  const { services } = await inProcessServices(`${upstreamEntryToml(upstream)}${others}`);
  app = createApp(services);
}, 60_000);
afterAll(() => upstream?.stop());

const call = (path: string, init?: RequestInit) => app.handle(new Request(`${ORIGIN}${path}`, init));
const sha256 = (bytes: ArrayBuffer) => `sha256:${createHash("sha256").update(new Uint8Array(bytes)).digest("hex")}`;

async function pullToken(repository: string): Promise<string> {
  const response = await call(`/auth/token?service=test-registry&scope=repository:${repository}:pull`);
  expect(response.status).toBe(200);
  return ((await response.json()) as { token: string }).token;
}

test("/v2/ answers the upstream's challenge with docxy's own realm", async () => {
  const response = await call("/v2/");
  expect(response.status).toBe(401);
  expect(response.headers.get("www-authenticate")).toBe(`Bearer realm="${ORIGIN}/auth/dockerhub/token",service="test-registry"`);
  expect(response.headers.get("docker-distribution-api-version")).toBe("registry/2.0");
  expect(await response.json()).toEqual({ errors: [{ code: "UNAUTHORIZED", message: "authentication required", detail: null }] });
});

test("/auth/token relays one token request to the upstream's token service", async () => {
  const before = upstream.tokenLog.length;
  const token = await pullToken("acme/app");
  expect(token.split(".")).toHaveLength(3); // a JWT, as the token server signs it
  expect(upstream.tokenLog.length).toBe(before + 1);
});

test("a manifest: GET gives its exact bytes, HEAD the same head without a body", async () => {
  const { app: image } = upstream.images;
  const headers = { authorization: `Bearer ${await pullToken("acme/app")}`, accept: image.mediaType };
  const got = await call("/v2/acme/app/manifests/v1", { headers });
  expect(got.status).toBe(200);
  expect(got.headers.get("docker-content-digest")).toBe(image.digest);
  expect(got.headers.get("content-type")).toBe(image.mediaType);
  expect(got.headers.get("content-length")).toBe(String(image.bytes.length));
  expect(new Uint8Array(await got.arrayBuffer())).toEqual(image.bytes);

  const head = await call("/v2/acme/app/manifests/v1", { headers, method: "HEAD" });
  expect(head.status).toBe(200);
  expect(head.headers.get("docker-content-digest")).toBe(image.digest);
  expect(head.headers.get("content-type")).toBe(image.mediaType);
  expect(head.headers.get("content-length")).toBe(String(image.bytes.length));
  expect(head.headers.get("x-cache")).toBe("HIT");
  expect(head.body).toBeNull();
});

test("a blob comes once from the CDN, then from the cache's file; both times its bytes hash to its digest", async () => {
  const layer = upstream.images.app.manifests[0]!.layers[0]!;
  const headers = { authorization: `Bearer ${await pullToken("acme/app")}` };
  const before = upstream.cdnLog.length;
  for (const expected of ["MISS", "HIT"]) {
    const response = await call(`/v2/acme/app/blobs/${layer.digest}`, { headers });
    expect(response.status).toBe(200);
    expect(response.headers.get("x-cache")).toBe(expected);
    expect(response.headers.get("content-length")).toBe(String(layer.size));
    expect(response.headers.get("docker-content-digest")).toBe(layer.digest);
    expect(sha256(await response.arrayBuffer())).toBe(layer.digest);
  }
  expect(upstream.cdnLog.length).toBe(before + 1);
});

test("a tags list is the upstream's, all 120 tags in one answer", async () => {
  const headers = { authorization: `Bearer ${await pullToken("library/manytags")}` };
  const response = await call("/v2/library/manytags/tags/list", { headers });
  expect(response.status).toBe(200);
  const bytes = await response.arrayBuffer();
  expect(response.headers.get("content-length")).toBe(String(bytes.byteLength));
  const list = JSON.parse(new TextDecoder().decode(bytes)) as { name: string; tags: string[] };
  expect(list.name).toBe("library/manytags");
  // In the upstream's own order, which distribution does not sort.
  expect(list.tags.toSorted()).toEqual(upstream.images.manytags.tags.toSorted());
  expect(list.tags).toHaveLength(120);
});

test("an unknown route, a bad repository name and a push get registry JSON errors", async () => {
  const expectations: [string, RequestInit | undefined, number, unknown][] = [
    ["/nope", undefined, 404, { code: "NOT_FOUND", message: "no route for /nope", detail: null }],
    ["/v2/UPPER/manifests/latest", undefined, 400, { code: "NAME_INVALID", message: 'invalid repository name: "UPPER"', detail: { name: "UPPER" } }],
    ["/v2/acme/app/manifests/v1", { method: "DELETE" }, 405, { code: "UNSUPPORTED", message: "DELETE is not supported: docxy is a pull-only proxy", detail: null }],
  ];
  for (const [path, init, status, error] of expectations) {
    const response = await call(path, init);
    expect(response.status).toBe(status);
    expect(response.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(response.headers.get("docker-distribution-api-version")).toBe("registry/2.0");
    expect(await response.json()).toEqual({ errors: [error] });
  }
});

test("/health reports the one upstream up", async () => {
  const response = await call("/health");
  expect(response.status).toBe(200);
  const report = (await response.json()) as { status: string; upstreams: { name: string; state: string; status: number }[] };
  expect(report.status).toBe("ok");
  expect(report.upstreams.map((u) => [u.name, u.state, u.status])).toEqual([["dockerhub", "up", 401]]);
});
