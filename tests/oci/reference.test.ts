import { describe, expect, test } from "bun:test";
import { RegistryError } from "../../src/oci/errors";
import { assertManifestReference, isDigest, isRegistryHost, isRepositoryName, isTag, withLibraryPrefix } from "../../src/oci/reference";

const SHA = "sha256:" + "a".repeat(64);

describe("repository names (dist-spec grammar)", () => {
  test.each([
    ["library/nginx", true],
    ["a/b/c/d", true],
    ["my-org/my.app__x", true],
    ["a--b", true],
    ["Library/nginx", false],
    ["-lead", false],
    ["trail-", false],
    ["a//b", false],
    ["a/../b", false],
    ["library%2Fnginx", false],
    ["a".repeat(256), false],
  ])("%s → %p", (name, valid) => expect(isRepositoryName(name)).toBe(valid));
});

describe("tags and digests", () => {
  test.each([
    ["latest", true],
    ["v1.0_beta-2", true],
    ["_x", true],
    [".x", false],
    ["a".repeat(128), true],
    ["a".repeat(129), false],
  ])("tag %s → %p", (tag, valid) => expect(isTag(tag)).toBe(valid));

  test.each([
    [SHA, true],
    ["sha256:" + "A".repeat(64), false],
    ["sha256:abc", false],
    ["sha512:" + "0".repeat(128), true],
    ["multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8", true],
    ["sha256", false],
  ])("digest %s → %p", (digest, valid) => expect(isDigest(digest)).toBe(valid));

  test("a manifest reference that is no tag is MANIFEST_UNKNOWN (404); a bad digest is DIGEST_INVALID (400)", () => {
    expect(() => assertManifestReference("bad tag")).toThrow(RegistryError);
    let thrown: unknown;
    try {
      assertManifestReference(".INVALID_MANIFEST_NAME");
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toMatchObject({ ociCode: "MANIFEST_UNKNOWN", status: 404 });
    try {
      assertManifestReference("sha256:xyz");
    } catch (error) {
      expect((error as RegistryError).ociCode).toBe("DIGEST_INVALID");
      expect((error as RegistryError).status).toBe(400);
    }
  });
});

test("library/ is added to single-segment names only", () => {
  expect(withLibraryPrefix("alpine")).toBe("library/alpine");
  expect(withLibraryPrefix("acme/app")).toBe("acme/app");
});

describe("registry hosts (Docker's rule for telling a registry from a namespace)", () => {
  test.each([
    ["ghcr.io", true],
    ["registry.local:5000", true],
    ["localhost", true],
    ["localhost:5000", true],
    ["127.0.0.1:5000", true],
    ["Quay.IO", true],
    ["quay", false],
    ["library", false],
    ["bad_host.io", false],
    ["-x.io", false],
    ["x.io:123456", false],
  ])("%s → %p", (segment, registry) => expect(isRegistryHost(segment)).toBe(registry));
});
