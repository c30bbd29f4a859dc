import { expect, test } from "bun:test";
import { rewriteScopes, upstreamTokenQuery } from "../../src/auth/token-request";
import type { Upstream } from "../../src/upstream/table";

const hub: Upstream = { name: "dockerhub", registry: "docker.io", url: "https://r", hosts: [], autoLibraryPrefix: true };
const ghcr: Upstream = { ...hub, name: "ghcr", autoLibraryPrefix: false };

test("service goes first, the client's service is dropped, order and repeated scopes are kept", () => {
  const client = new URLSearchParams("account=alice&SERVICE=evil&scope=repository:alpine:pull&client_id=docker&scope=repository:acme/app:pull&offline_token=true");
  expect([...upstreamTokenQuery(client, "registry.docker.io", hub)]).toEqual([
    ["service", "registry.docker.io"],
    ["account", "alice"],
    ["scope", "repository:library/alpine:pull"],
    ["client_id", "docker"],
    ["scope", "repository:acme/app:pull"],
    ["offline_token", "true"],
  ]);
});

test("scopes get library/ only for single-segment repository names when the upstream wants it", () => {
  expect(rewriteScopes("repository:alpine:pull,push", hub)).toBe("repository:library/alpine:pull,push");
  expect(rewriteScopes("repository:alpine:pull", ghcr)).toBe("repository:alpine:pull");
  expect(rewriteScopes("repository:localhost:5000/x:pull", hub)).toBe("repository:localhost:5000/x:pull");
  expect(rewriteScopes("registry:catalog:*", hub)).toBe("registry:catalog:*");
  // OAuth2 forms carry several scopes in one field, separated by spaces
  expect(rewriteScopes("repository:a:pull repository:b/c:pull", hub)).toBe("repository:library/a:pull repository:b/c:pull");
});

test("a registry prefix the client used is taken off before library/ is considered", () => {
  expect(rewriteScopes("repository:ghcr.io/x/y:pull", ghcr, "ghcr.io")).toBe("repository:x/y:pull");
  expect(rewriteScopes("repository:docker.io/alpine:pull repository:alpine:pull", hub, "docker.io")).toBe(
    "repository:library/alpine:pull repository:library/alpine:pull",
  );
  // a scope for another registry keeps its name: the upstream will simply not grant it
  expect(rewriteScopes("repository:quay.io/a/b:pull", ghcr, "ghcr.io")).toBe("repository:quay.io/a/b:pull");
});
