import { expect, test } from "bun:test";
import { Value } from "@sinclair/typebox/value";
import { ConfigSchema, type Config } from "../../src/config/schema";
import { checkSemantics } from "../../src/config/validate";
import { upstreamTableFromConfig } from "../../src/upstream/table";

const config = (registry: Record<string, unknown>): Config => Value.Default(ConfigSchema, { registry }) as Config;

test("the built-in table: Docker Hub by default, the well-known registries, nvcr opt-in", () => {
  const table = upstreamTableFromConfig(config({}));
  expect(table.default.name).toBe("dockerhub");
  expect(table.all.map((u) => u.registry)).toEqual([
    "docker.io",
    "ghcr.io",
    "quay.io",
    "gcr.io",
    "registry.k8s.io",
    "mcr.microsoft.com",
    "public.ecr.aws",
    "docker.elastic.co",
    "registry.gitlab.com",
  ]);
  expect(table.byRegistry("docker.elastic.co")).toMatchObject({ name: "elastic", url: "https://docker.elastic.co", autoLibraryPrefix: false });
  expect(table.byRegistry("registry.gitlab.com")).toMatchObject({ name: "gitlab", url: "https://registry.gitlab.com", autoLibraryPrefix: false });
  // Their realms are discovered from their /v2/ challenges, as for every built-in but Docker Hub.
  expect([table.byName("elastic")?.authRealm, table.byName("gitlab")?.authRealm]).toEqual([undefined, undefined]);
  expect(table.byRegistry("GHCR.io")?.name).toBe("ghcr");
  expect(table.byRegistry("registry-1.docker.io")?.name).toBe("dockerhub"); // the URL's own host counts too
  expect(table.byRegistry("nvcr.io")).toBeUndefined();
});

test("an entry with a built-in name overrides only the keys it sets; a new URL drops the built-in realm", () => {
  const table = upstreamTableFromConfig(
    config({ upstreams: [{ name: "ghcr", upstream_registry: "http://127.0.0.1:9000", hosts: ["ghcr.corp"] }, { name: "nvcr", enabled: true }, { name: "quay", enabled: false }] }),
  );
  expect(table.byName("ghcr")).toMatchObject({ registry: "ghcr.io", url: "http://127.0.0.1:9000", hosts: ["ghcr.corp"], authRealm: undefined });
  expect(table.byName("nvcr")?.url).toBe("https://nvcr.io");
  expect(table.byName("quay")).toBeUndefined();
  expect(table.byName("dockerhub")?.authRealm).toBe("https://auth.docker.io/token");
});

test("a new upstream gets its registry from its URL unless it names one", () => {
  const table = upstreamTableFromConfig(
    config({ upstreams: [{ name: "corp", upstream_registry: "https://harbor.corp:8443/" }, { name: "forge", upstream_registry: "https://registry.forge.corp", registry: "forge.io" }] }),
  );
  expect(table.byName("corp")).toMatchObject({ registry: "harbor.corp:8443", url: "https://harbor.corp:8443", autoLibraryPrefix: false, hosts: [] });
  expect(table.byRegistry("forge.io")?.name).toBe("forge");
});

test("Wharf's legacy keys point the default upstream elsewhere; builtin_upstreams = false leaves only it", () => {
  const table = upstreamTableFromConfig(config({ upstream_registry: "http://127.0.0.1:5001", auth_realm: "http://127.0.0.1:5002/token", auth_service: "x", builtin_upstreams: false }));
  expect(table.all).toHaveLength(1);
  expect(table.default).toMatchObject({ name: "dockerhub", registry: "docker.io", url: "http://127.0.0.1:5001", authService: "x" });
});

test("config problems: a new upstream needs a URL, a registry must look like one, the default must exist", () => {
  const problems = checkSemantics(config({ default: "nope", upstreams: [{ name: "corp" }, { name: "x", upstream_registry: "https://x.io", registry: "not a host" }] }));
  expect(problems).toEqual([
    "registry.upstreams[0].upstream_registry: required for an upstream that is not built in",
    'registry.upstreams[1].registry: must be a registry host like ghcr.io or registry.local:5000 (got "not a host")',
    'registry.default: no upstream named "nope"',
  ]);
});

test("allow_private_redirects is off unless an entry turns it on, for built-ins too", () => {
  const table = upstreamTableFromConfig(config({ upstreams: [{ name: "lan", upstream_registry: "http://10.0.0.5:5000", allow_private_redirects: true }, { name: "ghcr", hosts: ["g"] }] }));
  expect(table.byName("lan")?.allowPrivateRedirects).toBe(true);
  expect(table.byName("ghcr")?.allowPrivateRedirects).toBe(false);
  expect(table.byName("dockerhub")?.allowPrivateRedirects).toBe(false);
});

test("Wharf's plain config pointing at another registry keeps no Docker Hub realm: it is discovered from that upstream", () => {
  const table = upstreamTableFromConfig(config({ upstream_registry: "https://docxy.example.com/" }));
  expect(table.default).toMatchObject({ name: "dockerhub", registry: "docker.io", url: "https://docxy.example.com", authRealm: undefined, authService: undefined });
  // the same with the built-in table off, and for a listed entry of a new name
  expect(upstreamTableFromConfig(config({ upstream_registry: "http://10.0.0.5:5000", builtin_upstreams: false })).default.authRealm).toBeUndefined();
  expect(upstreamTableFromConfig(config({ upstreams: [{ name: "far", upstream_registry: "https://far.example.com" }] })).byName("far")?.authRealm).toBeUndefined();
});

test("Docker Hub's URL keeps Docker Hub's realm and service when they are not set, with or without the built-in table", () => {
  for (const registry of [{}, { upstream_registry: "https://registry-1.docker.io/" }, { builtin_upstreams: false }, { upstreams: [{ name: "hub", upstream_registry: "https://registry-1.docker.io" }] }]) {
    const table = upstreamTableFromConfig(config(registry));
    const hub = table.byName("hub") ?? table.default;
    expect([hub.authRealm, hub.authService]).toEqual(["https://auth.docker.io/token", "registry.docker.io"]);
  }
});

test("a realm and service the operator sets win, also for a non-Docker-Hub URL and also when they name Docker Hub's", () => {
  const table = upstreamTableFromConfig(config({ upstream_registry: "https://mirror.corp", auth_realm: "https://auth.docker.io/token", auth_service: "registry.docker.io" }));
  expect([table.default.authRealm, table.default.authService]).toEqual(["https://auth.docker.io/token", "registry.docker.io"]);
});

test("fallbacks: per entry (URLs or tables with credentials), or the legacy [registry] key; each inherits its upstream's naming", () => {
  const table = upstreamTableFromConfig(
    config({ upstreams: [{ name: "dockerhub", fallbacks: ["https://mirror.gcr.io/", { url: "https://mirror.corp", credentials: [{ username: "bot", password: "x" }] }] }] }),
  );
  const hub = table.byName("dockerhub")!;
  expect(hub.fallbacks?.map((f) => f.url)).toEqual(["https://mirror.gcr.io", "https://mirror.corp"]);
  expect(hub.fallbacks?.[0]).toMatchObject({ registry: "docker.io", autoLibraryPrefix: true, hosts: [], authRealm: undefined });
  expect(table.all.map((u) => u.url)).not.toContain("https://mirror.gcr.io"); // never routed to by itself
  expect(table.byName("ghcr")?.fallbacks).toEqual([]);

  const legacy = upstreamTableFromConfig(config({ upstream_registry: "https://mirror.corp", fallbacks: ["https://registry-1.docker.io"] }));
  expect(legacy.default.fallbacks?.[0]).toMatchObject({ url: "https://registry-1.docker.io", authRealm: "https://auth.docker.io/token" });
});
