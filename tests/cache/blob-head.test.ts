/** The blob answer's status and headers, shared by the proxy port and the sendfile port. */
import { expect, test } from "bun:test";
import { blobHead } from "../../src/cache/blob-head";

const D = `sha256:${"c".repeat(64)}`;
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
