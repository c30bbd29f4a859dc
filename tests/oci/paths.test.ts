import { expect, test } from "bun:test";
import { RegistryError } from "../../src/oci/errors";
import { parsePullPath, registryPrefix, sendfileBlobDigest, unsupportedMethod } from "../../src/oci/paths";

const SHA = "sha256:" + "b".repeat(64);

test("routes on the last kind segment, so names may contain kind words", () => {
  expect(parsePullPath("foo/manifests/bar/manifests/latest")).toEqual({ name: "foo/manifests/bar", kind: "manifests", reference: "latest" });
  expect(parsePullPath(`a/b/c/blobs/${SHA}`)).toEqual({ name: "a/b/c", kind: "blobs", reference: SHA });
  expect(parsePullPath("a/b/tags/list")).toEqual({ name: "a/b", kind: "tags" });
  expect(parsePullPath(`x/referrers/${SHA}`)).toEqual({ name: "x", kind: "referrers", reference: SHA });
  expect(parsePullPath("x/manifests/tags/list")).toEqual({ name: "x/manifests", kind: "tags" });
  expect(parsePullPath("x/tags/list/manifests/v1")).toEqual({ name: "x/tags/list", kind: "manifests", reference: "v1" });
});

test("paths outside the pull API are not pull paths", () => {
  for (const rest of ["_catalog", "library/x/blobs/uploads/", "library/x/manifests/", "manifests/latest", "x/tags/list/", "x/tags"]) {
    expect(parsePullPath(rest)).toBeUndefined();
  }
});

test.each([
  ["Library/x/manifests/latest", "NAME_INVALID"],
  ["library%2Fx/manifests/latest", "NAME_INVALID"],
  ["Library/tags/list", "NAME_INVALID"],
  ["x/manifests/bad%20tag", "MANIFEST_UNKNOWN"],
  ["x/manifests/.INVALID_MANIFEST_NAME", "MANIFEST_UNKNOWN"],
  ["x/blobs/latest", "DIGEST_INVALID"],
  ["x/referrers/latest", "DIGEST_INVALID"],
  ["x/manifests/sha256:zz", "DIGEST_INVALID"],
])("%s is rejected with %s", (path, code) => {
  let thrown: unknown;
  try {
    parsePullPath(path);
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(RegistryError);
  expect((thrown as RegistryError).ociCode).toBe(code as never);
});

test("a registry prefix is a host-like first segment followed by a whole API path", () => {
  expect(registryPrefix("ghcr.io/x/y/manifests/v1")).toEqual({ registry: "ghcr.io", rest: "x/y/manifests/v1" });
  expect(registryPrefix("GHCR.io/x/tags/list")).toEqual({ registry: "ghcr.io", rest: "x/tags/list" });
  expect(registryPrefix(`localhost/x/blobs/${SHA}`)).toEqual({ registry: "localhost", rest: `x/blobs/${SHA}` });
  expect(registryPrefix("registry.local:5000/x/manifests/v1")).toEqual({ registry: "registry.local:5000", rest: "x/manifests/v1" });
  // `my.app` alone is a repository: nothing that could be a name follows it
  expect(registryPrefix("my.app/manifests/latest")).toBeUndefined();
  // short names are Docker Hub namespaces, not registries
  expect(registryPrefix("quay/tool/manifests/latest")).toBeUndefined();
  expect(registryPrefix("ghcr.io/x/y/blobs/uploads/")).toBeUndefined();
  expect(registryPrefix("/x/manifests/v1")).toBeUndefined();
  expect(registryPrefix("bad_host.io/x/manifests/v1")).toBeUndefined();
});

test("the sendfile port serves /blobs/<sha256 digest> and nothing else", () => {
  expect(sendfileBlobDigest(`/blobs/${SHA}`)).toBe(SHA);
  for (const path of [`/blobs/${SHA}/`, `/v2/x/blobs/${SHA}`, `/blobs/sha512:${"b".repeat(128)}`, `/blobs/sha256:${"B".repeat(64)}`, "/blobs/", "/"]) {
    expect(sendfileBlobDigest(path)).toBeUndefined();
  }
});

test("other methods are UNSUPPORTED (405) and say which ones are", () => {
  const error = unsupportedMethod("PUT");
  expect([error.ociCode, error.status, error.headers, error.message]).toEqual(["UNSUPPORTED", 405, { allow: "GET, HEAD" }, "PUT is not supported: docxy is a pull-only proxy"]);
});
