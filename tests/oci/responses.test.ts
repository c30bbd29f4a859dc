/** The answers docxy shapes itself, the same on every port: exact statuses, headers and bytes. */
import { describe, expect, test } from "bun:test";
import { RegistryError } from "../../src/oci/errors";
import { blobHead, errorBody, manifestHeaders, parseRange, registryErrorResponse, versionCheckResponse, withNamespace } from "../../src/oci/responses";

const D = `sha256:${"c".repeat(64)}`;
const headersOf = (response: { headers: Headers }) => Object.fromEntries(response.headers);

describe("blob heads", () => {
  const pick = (h: ReturnType<typeof blobHead>) => ({
    status: h.status,
    length: h.headers.get("content-length"),
    range: h.headers.get("content-range"),
    digest: h.headers.get("docker-content-digest"),
    cache: h.headers.get("x-cache"),
    span: h.status === 416 ? undefined : [h.start, h.end],
  });

  test("whole, ranged, suffix, out of range, and HEAD (which ignores Range)", () => {
    expect(pick(blobHead(D, 100, "GET", null, "HIT"))).toEqual({ status: 200, length: "100", range: null, digest: D, cache: "HIT", span: [0, 99] });
    expect(pick(blobHead(D, 100, "GET", "bytes=10-19", "MISS"))).toEqual({ status: 206, length: "10", range: "bytes 10-19/100", digest: D, cache: "MISS", span: [10, 19] });
    expect(pick(blobHead(D, 100, "GET", "bytes=-5", "HIT"))).toMatchObject({ status: 206, length: "5", range: "bytes 95-99/100", span: [95, 99] });
    expect(pick(blobHead(D, 100, "GET", "bytes=100-", "HIT"))).toMatchObject({ status: 416, length: null, range: "bytes */100", span: undefined });
    expect(pick(blobHead(D, 100, "HEAD", "bytes=10-19", "HIT"))).toMatchObject({ status: 200, length: "100", range: null });
  });

  test("every header a client reads, exactly", () => {
    expect(headersOf(blobHead(D, 100, "GET", "bytes=0-0", "COALESCED"))).toEqual({
      "content-type": "application/octet-stream",
      "accept-ranges": "bytes",
      "docker-content-digest": D,
      "docker-distribution-api-version": "registry/2.0",
      etag: `"${D}"`,
      "x-cache": "COALESCED",
      "content-length": "1",
      "content-range": "bytes 0-0/100",
    });
  });

  test("an empty blob is 200 with length 0", () => {
    expect(pick(blobHead(D, 0, "GET", null, "HIT"))).toMatchObject({ status: 200, length: "0", span: [0, -1] });
  });
});

describe("Range (RFC 9110 §14, one range only)", () => {
  test.each([
    [null, undefined],
    ["bytes=0-9", [0, 9]],
    ["bytes=90-", [90, 99]],
    ["bytes=90-500", [90, 99]],
    ["bytes=-10", [90, 99]],
    ["bytes=-500", [0, 99]],
    [" bytes=1-2 ", [1, 2]],
    ["bytes=-0", "unsatisfiable"],
    ["bytes=100-", "unsatisfiable"],
    ["bytes=5-4", "unsatisfiable"],
    ["bytes=-", undefined],
    ["bytes=0-1,5-6", undefined],
    ["items=0-1", undefined],
  ] as const)("%p of 100 bytes → %p", (header, expected) => {
    expect(parseRange(header, 100)).toEqual(expected as never);
  });
});

test("manifest headers: its media type, exact length, digest, API version, cache status", () => {
  expect(headersOf({ headers: manifestHeaders({ digest: D, mediaType: "application/vnd.oci.image.index.v1+json", size: 512 }, "REVALIDATED") })).toEqual({
    "content-type": "application/vnd.oci.image.index.v1+json",
    "content-length": "512",
    "docker-content-digest": D,
    "docker-distribution-api-version": "registry/2.0",
    etag: `"${D}"`,
    "x-cache": "REVALIDATED",
  });
});

test("OCI-Namespace names the registry only to a client that asked with ?ns=", () => {
  const upstream = { registry: "ghcr.io" };
  expect(withNamespace(new Headers(), { via: "ns", upstream }).get("oci-namespace")).toBe("ghcr.io");
  for (const via of ["prefix", "host", "default"]) expect(withNamespace(new Headers(), { via, upstream }).has("oci-namespace")).toBe(false);
});

describe("registry errors", () => {
  const error = new RegistryError("UNSUPPORTED", "pull-only", { headers: { allow: "GET, HEAD" }, detail: { method: "PUT" } });
  const body = '{"errors":[{"code":"UNSUPPORTED","message":"pull-only","detail":{"method":"PUT"}}]}';

  test("GET: the error's status and headers, registry JSON with its exact length, the API version", async () => {
    const response = registryErrorResponse(error, "GET");
    expect(response.status).toBe(405);
    expect(headersOf(response)).toEqual({
      allow: "GET, HEAD",
      "content-type": "application/json; charset=utf-8",
      "docker-distribution-api-version": "registry/2.0",
      "content-length": String(body.length),
    });
    expect(await response.text()).toBe(body);
  });

  test("HEAD: the same status and headers, no body", async () => {
    const response = registryErrorResponse(error, "HEAD");
    expect([response.status, response.body, response.headers.get("content-length")]).toEqual([405, null, String(body.length)]);
    expect(response.headers.get("docker-distribution-api-version")).toBe("registry/2.0");
  });

  test("a status other than the code's usual one is kept", () => {
    expect(registryErrorResponse(new RegistryError("UNAVAILABLE", "upstream down", { status: 502 }), "GET").status).toBe(502);
  });

  test("the body a client prints as `code: message`, detail null unless given; the message is JSON-escaped", () => {
    expect(errorBody("DENIED", 'no "x"')).toBe('{"errors":[{"code":"DENIED","message":"no \\"x\\"","detail":null}]}');
  });
});

test("the version check: 200 and an empty JSON object (HEAD: no body, same length)", async () => {
  const get = versionCheckResponse("GET");
  expect([get.status, headersOf(get), await get.text()]).toEqual([
    200,
    { "content-type": "application/json", "docker-distribution-api-version": "registry/2.0", "content-length": "2" },
    "{}",
  ]);
  const head = versionCheckResponse("HEAD");
  expect([head.status, head.body, head.headers.get("content-length")]).toEqual([200, null, "2"]);
});
