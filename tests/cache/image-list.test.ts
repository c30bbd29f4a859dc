/**
 * The image-list syntax shared by `[cache] pin` and the `[prewarm] file`
 * (cache/image-list.ts): names read as `docker pull` reads them, platform
 * filters, globs, and entries that can never name an image refused with the fix.
 */
import { expect, test } from "bun:test";
import { entryMatches, parseImageEntry, parseImageList } from "../../src/cache/image-list";

test("names are read the way docker pull reads them; no tag is latest; platforms follow the image", () => {
  for (const written of ["alpine", "library/alpine", "docker.io/alpine", "docker.io/library/alpine:latest"]) {
    expect(parseImageEntry(written)).toMatchObject({ registry: "docker.io", repository: "library/alpine", reference: "latest", platforms: [] });
  }
  expect(parseImageEntry("  alpine:3.20   linux/amd64,linux/arm64/v8 ")).toEqual({
    text: "alpine:3.20   linux/amd64,linux/arm64/v8",
    registry: "docker.io",
    repository: "library/alpine",
    reference: "3.20",
    platforms: ["linux/amd64", "linux/arm64/v8"],
    repositoryGlob: false,
    tagGlob: false,
  });
  expect(parseImageEntry("localhost:5000/x/y@sha256:" + "a".repeat(64))).toMatchObject({ registry: "localhost:5000", repository: "x/y", reference: `sha256:${"a".repeat(64)}` });
  expect(parseImageEntry("ghcr.io/acme/app:1.* linux/amd64")).toMatchObject({ registry: "ghcr.io", repository: "acme/app", reference: "1.*", tagGlob: true, repositoryGlob: false });
  expect(parseImageEntry("ghcr.io/acme/*")).toMatchObject({ repository: "acme/*", reference: "latest", repositoryGlob: true });
});

test("entries that can never name an image are refused with the fix", () => {
  expect(() => parseImageEntry("registry-1.docker.io/library/alpine")).toThrow('write "docker.io/library/alpine"');
  expect(() => parseImageEntry("*")).toThrow('write "**" for every image');
  expect(() => parseImageEntry("Alpine:3.20")).toThrow("is not a repository name");
  expect(() => parseImageEntry("alpine:3.20 amd64")).toThrow("is not os/arch[/variant]");
  expect(() => parseImageEntry("alpine@sha256:abc")).toThrow("is not a digest");
  expect(() => parseImageEntry(`ghcr.io/acme/*@sha256:${"a".repeat(64)}`)).toThrow("a digest names one image");
  expect(() => parseImageEntry("alpine:-bad")).toThrow("is not a tag");
});

test("a list: comments and blank lines skipped, a bad line reported with its number and the others kept", () => {
  const { images, problems } = parseImageList("# warm these\n\nalpine:3.20 linux/amd64\nregistry-1.docker.io/x/y\n  acme/app:v1 # the app\r\n");
  expect(images.map((i) => [i.line, i.registry, i.repository, i.reference, i.platforms])).toEqual([
    [3, "docker.io", "library/alpine", "3.20", ["linux/amd64"]],
    [5, "docker.io", "acme/app", "v1", []],
  ]);
  expect(problems).toHaveLength(1);
  expect(problems[0]).toMatchObject({ line: 4, text: "registry-1.docker.io/x/y" });
  expect(problems[0]!.error).toContain('write "docker.io/x/y"');
});

test("globs: * within a segment, ** across segments, on the registry, repository and tag", () => {
  const acme = parseImageEntry("ghcr.io/acme/*:1.*");
  expect(entryMatches(acme, "ghcr.io", "acme/app", "1.2")).toBe(true);
  expect(entryMatches(acme, "ghcr.io", "acme/app", "2.0")).toBe(false);
  expect(entryMatches(acme, "ghcr.io", "acme/team/app", "1.2")).toBe(false);
  expect(entryMatches(acme, "quay.io", "acme/app", "1.2")).toBe(false);
  const everything = parseImageEntry("**:*");
  expect(entryMatches(everything, "quay.io", "a/b/c", "v1")).toBe(true);
  expect(entryMatches(parseImageEntry("ghcr.io/acme/**:*"), "ghcr.io", "acme/team/app", "x")).toBe(true);
});
