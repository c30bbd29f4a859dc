import { expect, test } from "bun:test";
import { Value } from "@sinclair/typebox/value";
import { ConfigSchema } from "../../src/config/schema";
import { RegistryError } from "../../src/oci/errors";
import { routePull, routeToken } from "../../src/upstream/routing";
import { upstreamTableFromConfig } from "../../src/upstream/table";

const table = upstreamTableFromConfig(
  Value.Decode(ConfigSchema, Value.Default(ConfigSchema, { registry: { upstreams: [{ name: "ghcr", hosts: ["ghcr.example.com"] }] } })),
);
const pull = (rest: string, ns: string | null = null, host: string | null = "docxy.local:5000") => {
  const { route, rest: left } = routePull(table, { ns, host }, rest);
  return [route.upstream.name, route.via, route.prefix, left];
};
const errorOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    return error as RegistryError;
  }
  throw new Error("expected an error");
};

test("precedence: ns, then a registry prefix, then Host, then the default", () => {
  expect(pull("x/y/manifests/v1", "ghcr.io")).toEqual(["ghcr", "ns", undefined, "x/y/manifests/v1"]);
  expect(pull("ghcr.io/x/y/manifests/v1")).toEqual(["ghcr", "prefix", "ghcr.io", "x/y/manifests/v1"]);
  expect(pull("x/y/manifests/v1", null, "ghcr.example.com")).toEqual(["ghcr", "host", undefined, "x/y/manifests/v1"]);
  expect(pull("library/alpine/manifests/latest")).toEqual(["dockerhub", "default", undefined, "library/alpine/manifests/latest"]);
  // ns beats a prefix, and a prefix beats the Host
  expect(pull("quay.io/x/y/manifests/v1", "ghcr.io")[0]).toBe("ghcr");
  expect(pull("quay.io/x/y/tags/list", null, "ghcr.example.com")).toEqual(["quay", "prefix", "quay.io", "x/y/tags/list"]);
});

test("the built-in Elastic and GitLab registries by prefix and by ns, names kept as written (no library/)", () => {
  expect(pull("docker.elastic.co/elasticsearch/elasticsearch/manifests/8.15.0")).toEqual(["elastic", "prefix", "docker.elastic.co", "elasticsearch/elasticsearch/manifests/8.15.0"]);
  expect(pull("gitlab-org/gitlab-runner/manifests/latest", "registry.gitlab.com")).toEqual(["gitlab", "ns", undefined, "gitlab-org/gitlab-runner/manifests/latest"]);
  expect(pull("registry.gitlab.com/group/project/blobs/sha256:00")).toEqual(["gitlab", "prefix", "registry.gitlab.com", "group/project/blobs/sha256:00"]);
  expect(table.byName("elastic")?.autoLibraryPrefix).toBe(false);
  expect(table.byName("gitlab")?.autoLibraryPrefix).toBe(false);
});

test("Docker Hub through a prefix, and single names stay single", () => {
  expect(pull("docker.io/alpine/manifests/latest")).toEqual(["dockerhub", "prefix", "docker.io", "alpine/manifests/latest"]);
  // `my.app` alone is a (library) repository name, not a registry: nothing follows it
  expect(pull("my.app/manifests/latest")).toEqual(["dockerhub", "default", undefined, "my.app/manifests/latest"]);
  // short names are not prefixes: `quay` may be a Docker Hub namespace sent bare by registry-mirrors
  expect(pull("quay/tool/manifests/latest")).toEqual(["dockerhub", "default", undefined, "quay/tool/manifests/latest"]);
});

test("a registry nobody listed is NAME_UNKNOWN, whether named by ns or by prefix", () => {
  for (const fn of [() => pull("x/manifests/v1", "evil.com"), () => pull("x/manifests/v1", "127.0.0.1:22"), () => pull("evil.com:80/x/manifests/v1"), () => pull("nvcr.io/x/y/manifests/v1")]) {
    const error = errorOf(fn);
    expect(error).toBeInstanceOf(RegistryError);
    expect(error.ociCode).toBe("NAME_UNKNOWN");
    expect(error.status).toBe(404);
  }
});

test("token requests route by the registry prefix on their scopes first, then the named endpoint, then Host", () => {
  const hub = table.byName("dockerhub")!;
  expect(routeToken(table, { ns: null, host: null }, ["repository:ghcr.io/x/y:pull"], hub)).toMatchObject({ upstream: { name: "ghcr" }, prefix: "ghcr.io" });
  expect(routeToken(table, { ns: null, host: null }, ["repository:x/y:pull"], table.byName("ghcr"))).toMatchObject({ upstream: { name: "ghcr" } });
  expect(routeToken(table, { ns: null, host: "ghcr.example.com" }, ["repository:x/y:pull"]).upstream.name).toBe("ghcr");
  expect(routeToken(table, { ns: null, host: null }, []).upstream.name).toBe("dockerhub");
  expect(errorOf(() => routeToken(table, { ns: null, host: null }, ["repository:evil.com/x:pull"])).ociCode).toBe("NAME_UNKNOWN");
});
