import { expect, test } from "bun:test";
import { RegistryError } from "../../src/oci/errors";
import { parsePullPath } from "../../src/proxy/pull-path";
import { relativeLinks } from "../../src/proxy/pass-through";

const SHA = "sha256:" + "b".repeat(64);

test("routes on the last kind segment, so names may contain kind words", () => {
  expect(parsePullPath("foo/manifests/bar/manifests/latest")).toEqual({ name: "foo/manifests/bar", kind: "manifests", reference: "latest" });
  expect(parsePullPath(`a/b/c/blobs/${SHA}`)).toEqual({ name: "a/b/c", kind: "blobs", reference: SHA });
  expect(parsePullPath("a/b/tags/list")).toEqual({ name: "a/b", kind: "tags" });
  expect(parsePullPath(`x/referrers/${SHA}`)).toEqual({ name: "x", kind: "referrers", reference: SHA });
});

test("paths outside the pull API are not pull paths", () => {
  expect(parsePullPath("_catalog")).toBeUndefined();
  expect(parsePullPath("library/x/blobs/uploads/")).toBeUndefined();
  expect(parsePullPath("library/x/manifests/")).toBeUndefined();
});

test.each([
  ["Library/x/manifests/latest", "NAME_INVALID"],
  ["library%2Fx/manifests/latest", "NAME_INVALID"],
  ["x/manifests/bad%20tag", "MANIFEST_UNKNOWN"],
  ["x/manifests/.INVALID_MANIFEST_NAME", "MANIFEST_UNKNOWN"],
  ["x/blobs/latest", "DIGEST_INVALID"],
  ["x/manifests/sha256:zz", "DIGEST_INVALID"],
])("%s is rejected with %s", (path, code) => {
  expect(() => parsePullPath(path)).toThrow(RegistryError);
  try {
    parsePullPath(path);
  } catch (error) {
    expect((error as RegistryError).ociCode).toBe(code as never);
  }
});

test("pagination links lose the upstream origin", () => {
  expect(relativeLinks('<https://registry-1.docker.io/v2/library/x/tags/list?last=t99&n=100>; rel="next"')).toBe(
    '</v2/library/x/tags/list?last=t99&n=100>; rel="next"',
  );
  expect(relativeLinks('</v2/x/tags/list?n=1&last=a>; rel="next"')).toBe('</v2/x/tags/list?n=1&last=a>; rel="next"');
});
