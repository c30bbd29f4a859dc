import { expect, test } from "bun:test";
import { BUILTIN_UPSTREAMS } from "../../src/upstream/builtins";

test("names and registries are unique, every URL is HTTPS without a trailing slash", () => {
  expect(new Set(BUILTIN_UPSTREAMS.map((b) => b.name)).size).toBe(BUILTIN_UPSTREAMS.length);
  expect(new Set(BUILTIN_UPSTREAMS.map((b) => b.registry)).size).toBe(BUILTIN_UPSTREAMS.length);
  for (const b of BUILTIN_UPSTREAMS) expect(b.url).toMatch(/^https:\/\/[^/]+$/);
});

test("only Docker Hub adds library/ and has its token service written out; nvcr is opt-in", () => {
  expect(BUILTIN_UPSTREAMS.filter((b) => b.autoLibraryPrefix).map((b) => b.name)).toEqual(["dockerhub"]);
  expect(BUILTIN_UPSTREAMS.filter((b) => b.authRealm || b.authService).map((b) => [b.name, b.authRealm, b.authService])).toEqual([
    ["dockerhub", "https://auth.docker.io/token", "registry.docker.io"],
  ]);
  expect(BUILTIN_UPSTREAMS.filter((b) => !b.enabled).map((b) => b.name)).toEqual(["nvcr"]);
});
