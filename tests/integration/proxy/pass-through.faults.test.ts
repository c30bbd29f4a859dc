/**
 * What the proxy does when the upstream misbehaves in ways a real registry
 * cannot be made to on demand: a connection cut mid-body, a 429, a missing
 * length, a hang. The upstream is an in-process fake; docxy is the real
 * binary. The same paths against a real registry are in pass-through.test.ts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startDocxy, type Docxy } from "../../support/docxy-process";
import { json } from "../../support/proxied-upstream";
import { rawRequest } from "../../support/raw-http";

const DIGEST = "sha256:" + "d".repeat(64);
const TEN_MIB = 10 * 1024 * 1024;
let hanging = false;
/** Resolved by the test once its client has the response head: the fake upstream then cuts the body. */
let cutAfterHead = Promise.withResolvers<void>();
const seenQueries: string[] = [];

const upstream: Bun.Server<undefined> = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  idleTimeout: 0,
  async fetch(request): Promise<Response> {
    const { pathname } = new URL(request.url);
    if (hanging) return new Promise<Response>(() => {});
    seenQueries.push(new URL(request.url).search);
    if (pathname === "/v2/library/many/tags/list") {
      // Docker Hub pages tags at 100 and may link absolutely to itself.
      return Response.json({ name: "library/many", tags: ["a", "b"] }, { headers: { link: `<${upstream.url.origin}/v2/library/many/tags/list?last=b&n=2>; rel="next"` } });
    }
    if (pathname === `/v2/acme/app/referrers/${DIGEST}`) {
      return Response.json({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [] }, { headers: { "oci-filters-applied": "artifactType" } });
    }
    if (pathname === "/v2/") return new Response("{}", { status: 401, headers: { "www-authenticate": 'Bearer realm="http://upstream.invalid/token",service="fake"' } });
    if (pathname.endsWith("/blobs/" + DIGEST) && pathname.includes("/cut/")) {
      let sent = 0;
      const body = new ReadableStream({
        async pull(controller) {
          if (sent >= 1024 * 1024) {
            // Cut once the client has docxy's head: a cut before it leaves the client a closed
            // connection and no answer, which is just as safe but not what this test looks at.
            await cutAfterHead.promise;
            return controller.error(new Error("connection reset by upstream"));
          }
          controller.enqueue(new Uint8Array(64 * 1024));
          sent += 64 * 1024;
        },
      });
      // Bun.serve drops this header for streams; the registry's HEAD-size is what a client would have seen.
      return new Response(body, { headers: { "content-length": String(TEN_MIB) } });
    }
    if (pathname.includes("/limited/")) {
      return Response.json(
        { errors: [{ code: "TOOMANYREQUESTS", message: "You have reached your pull rate limit.", detail: null }] },
        { status: 429, headers: { "retry-after": "42", "ratelimit-limit": "100;w=21600", "ratelimit-remaining": "0;w=21600" } },
      );
    }
    if (pathname.includes("/sizeless/")) {
      if (request.method === "HEAD") return new Response(null, { headers: { "content-type": "application/octet-stream" } });
      if (request.headers.get("range") === "bytes=0-0") return new Response("x", { status: 206, headers: { "content-range": "bytes 0-0/123456" } });
    }
    if (pathname.includes("/hsts/")) {
      return new Response("{}", {
        headers: { "strict-transport-security": "max-age=1", "alt-svc": 'h3=":443"', "set-cookie": "cdn=1", "keep-alive": "timeout=5", "content-type": "application/json" },
      });
    }
    return new Response("not found", { status: 404 });
  },
});

let docxy: Docxy;
beforeAll(async () => {
  docxy = await startDocxy({
    config: `[registry]
upstream_registry = "${upstream.url.origin}"
auth_realm = "${upstream.url.origin}/token"
auth_service = "fake"
[upstream]
header_timeout = 2
ping_timeout = 1
`,
  });
});
afterAll(async () => {
  await docxy?.stop();
  upstream.stop(true);
});

test("an upstream cut mid-body aborts the client's connection: a short body never looks complete", async () => {
  const response = await rawRequest(`${docxy.url}/v2/acme/cut/blobs/${DIGEST}`, "GET", {}, undefined, () => cutAfterHead.resolve());
  expect(response.status).toBe(200);
  expect(response.body.length).toBeLessThan(TEN_MIB);
  // Either the length was announced and not met, or a chunked body lacks its terminating chunk.
  const chunkedComplete = response.headers["transfer-encoding"] === "chunked" && response.body.toString("latin1").endsWith("0\r\n\r\n");
  expect(response.truncated || (response.headers["content-length"] === undefined && !chunkedComplete)).toBe(true);
  cutAfterHead = Promise.withResolvers<void>();
  const again = await fetch(`${docxy.url}/v2/acme/cut/blobs/${DIGEST}`);
  expect(again.status).toBe(200);
  cutAfterHead.resolve();
  await expect(again.arrayBuffer()).rejects.toThrow();
});

test("a 429 is relayed with its JSON, Retry-After and rate-limit headers", async () => {
  const response = await fetch(`${docxy.url}/v2/acme/limited/manifests/latest`);
  expect(response.status).toBe(429);
  expect(response.headers.get("retry-after")).toBe("42");
  expect(response.headers.get("ratelimit-remaining")).toBe("0;w=21600");
  expect((await json(response)).errors[0].code).toBe("TOOMANYREQUESTS");
});

test("a blob HEAD the upstream answers without a length gets it from a one-byte Range probe", async () => {
  const response = await rawRequest(`${docxy.url}/v2/acme/sizeless/blobs/${DIGEST}`, "HEAD");
  expect(response.status).toBe(200);
  expect(response.headers["content-length"]).toBe("123456");
  expect(response.headers["docker-content-digest"]).toBe(DIGEST);
});

test("headers about the upstream's own site or connection are not relayed", async () => {
  const response = await rawRequest(`${docxy.url}/v2/acme/hsts/manifests/latest`);
  expect(response.status).toBe(200);
  for (const name of ["strict-transport-security", "alt-svc", "set-cookie", "keep-alive"]) expect(response.headers[name]).toBeUndefined();
});

test("a hanging upstream: /v2/ still answers with our challenge, pulls get a 504 registry error, /health stays prompt", async () => {
  hanging = true;
  try {
    const ping = await fetch(`${docxy.url}/v2/`);
    expect(ping.status).toBe(401);
    expect(ping.headers.get("www-authenticate")).toBe(`Bearer realm="${docxy.url}/auth/dockerhub/token",service="fake"`);

    const pull = await fetch(`${docxy.url}/v2/library/alpine/manifests/latest`);
    expect(pull.status).toBe(504);
    expect((await json(pull)).errors[0].code).toBe("UNAVAILABLE");

    const health = await json(await fetch(`${docxy.url}/health`));
    expect(health.status).toBe("degraded");
    expect(health.upstreams[0].reachable).toBe(false);
  } finally {
    hanging = false;
  }
}, 20_000);

test("tags/list keeps n and last, drops containerd's ns, and its next link points at docxy", async () => {
  seenQueries.length = 0;
  const response = await fetch(`${docxy.url}/v2/many/tags/list?n=2&last=0&ns=docker.io`);
  expect(response.status).toBe(200);
  expect(seenQueries).toEqual(["?n=2&last=0"]);
  expect(response.headers.get("link")).toBe('</v2/library/many/tags/list?last=b&n=2>; rel="next"');
  expect((await json(response)).tags).toEqual(["a", "b"]);
});

test("referrers pass through with their filter query and headers", async () => {
  seenQueries.length = 0;
  const response = await fetch(`${docxy.url}/v2/acme/app/referrers/${DIGEST}?artifactType=application/x.sig`);
  expect(response.status).toBe(200);
  expect(seenQueries).toEqual(["?artifactType=application%2Fx.sig"]);
  expect(response.headers.get("oci-filters-applied")).toBe("artifactType");
});
