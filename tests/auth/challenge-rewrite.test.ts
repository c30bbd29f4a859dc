import { expect, test } from "bun:test";
import { proxyChallenge, tokenRealm } from "../../src/auth/challenge-rewrite";
import type { Upstream } from "../../src/upstream/table";

const hub: Upstream = { name: "dockerhub", registry: "docker.io", url: "https://registry-1.docker.io", hosts: [], authService: "registry.docker.io", autoLibraryPrefix: true };
const ghcr: Upstream = { name: "ghcr", registry: "ghcr.io", url: "https://ghcr.io", hosts: [], autoLibraryPrefix: false };

test("the realm is docxy's token endpoint for that upstream", () => {
  expect(tokenRealm("https://docxy.example", hub)).toBe("https://docxy.example/auth/dockerhub/token");
  expect(tokenRealm("http://10.0.0.1:5000", { ...ghcr, name: "my mirror" })).toBe("http://10.0.0.1:5000/auth/my%20mirror/token");
});

test("scope and error are carried over from the upstream's challenge; its realm never", () => {
  const upstream = 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull",error="insufficient_scope"';
  expect(proxyChallenge("https://docxy.example", hub, upstream)).toBe(
    'Bearer realm="https://docxy.example/auth/dockerhub/token",service="registry.docker.io",scope="repository:library/alpine:pull",error="insufficient_scope"',
  );
});

test("the service: the one given, else the upstream's configured one, else the challenge's", () => {
  const header = 'Bearer realm="https://ghcr.io/token",service="ghcr.io"';
  expect(proxyChallenge("https://d.example", ghcr, header)).toBe('Bearer realm="https://d.example/auth/ghcr/token",service="ghcr.io"');
  expect(proxyChallenge("https://d.example", ghcr, header, "other")).toBe('Bearer realm="https://d.example/auth/ghcr/token",service="other"');
  expect(proxyChallenge("https://d.example", hub, null)).toBe('Bearer realm="https://d.example/auth/dockerhub/token",service="registry.docker.io"');
});

test("a registry prefix the client routed by is put back on every repository scope", () => {
  const header = 'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:org/a:pull repository:org/b:pull"';
  expect(proxyChallenge("https://d.example", ghcr, header, undefined, "ghcr.io")).toBe(
    'Bearer realm="https://d.example/auth/ghcr/token",service="ghcr.io",scope="repository:ghcr.io/org/a:pull repository:ghcr.io/org/b:pull"',
  );
});
