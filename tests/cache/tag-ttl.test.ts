/** How long a tag is trusted (cache/tag-ttl.ts): the default, or the first override glob that matches. */
import { expect, test } from "bun:test";
import { tagTtl } from "../../src/cache/tag-ttl";

test("overrides match the tag alone, or repository:tag when they have a colon; the first match wins", () => {
  const ttl = tagTtl(300_000, { "library/*:latest": 30_000, latest: 60_000, "v*": 86_400_000 });
  expect(ttl("library/alpine", "latest")).toBe(30_000);
  expect(ttl("acme/app", "latest")).toBe(60_000);
  expect(ttl("acme/app", "v1.2")).toBe(86_400_000);
  expect(ttl("acme/app", "stable")).toBe(300_000);
});

test("* spans slashes and the rest of a pattern is literal", () => {
  const ttl = tagTtl(60_000, { "acme/*/tools:edge": 0, "1.0": 7_200_000 });
  expect(ttl("acme/team/sub/tools", "edge")).toBe(0);
  expect(ttl("acme/app", "1x0")).toBe(60_000);
  expect(ttl("acme/app", "1.0")).toBe(7_200_000);
});
