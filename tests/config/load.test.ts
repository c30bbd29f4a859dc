import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TSchema } from "@sinclair/typebox";
import { ConfigError, loadConfig } from "../../src/config/load";
import { ConfigSchema } from "../../src/config/schema";
import { routeByHost } from "../../src/upstream/routing";
import { upstreamTableFromConfig } from "../../src/upstream/table";

const dir = mkdtempSync(join(tmpdir(), "docxy-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function write(name: string, toml: string): Promise<string> {
  const path = join(dir, name);
  await Bun.write(path, toml);
  return path;
}

async function problems(path: string, env: Record<string, string> = {}): Promise<string[]> {
  try {
    await loadConfig({ path, env });
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

test("no file at all: HTTP on 5000 in front of Docker Hub", async () => {
  const { config, source } = await loadConfig({ env: {} });
  expect(source).toBe("embedded defaults");
  expect(config.server).toMatchObject({ http_port: 5000, http_enabled: true, https_enabled: false });
  const table = upstreamTableFromConfig(config);
  expect(table.default).toMatchObject({
    name: "dockerhub",
    url: "https://registry-1.docker.io",
    authRealm: "https://auth.docker.io/token",
    authService: "registry.docker.io",
    autoLibraryPrefix: true,
  });
});

test("Wharf 0.6.2's multi-registry file is read unchanged", async () => {
  const cert = await write("fullchain.cer", "placeholder");
  const key = await write("example.com.key", "placeholder");
  const path = await write(
    "wharf.toml",
    `[server]
http_port = 80
https_port = 443
http_enabled = true
https_enabled = true
behind_proxy = false
public_base_url = "https://docker.example.com/"

[registry]
default = "dockerhub"

[[registry.upstreams]]
name = "dockerhub"
hosts = ["docker.example.com"]
upstream_registry = "https://registry-1.docker.io/"
auth_realm = "https://auth.docker.io/token"
auth_service = "registry.docker.io"
auto_library_prefix = true

[[registry.upstreams]]
name = "ghcr"
hosts = ["GHCR.example.com:443"]
upstream_registry = "https://ghcr.io"
auth_realm = "https://ghcr.io/token"
auth_service = "ghcr.io"

[tls]
cert_path = "${cert}"
key_path = "${key}"
`,
  );
  const { config, warnings } = await loadConfig({ path, env: {} });
  expect(warnings).toEqual([]);
  const table = upstreamTableFromConfig(config);
  const pick = (name: string) => {
    const u = table.byName(name)!;
    return [u.name, u.registry, u.url, u.hosts, u.autoLibraryPrefix, u.publicBaseUrl, u.authRealm, u.authService];
  };
  expect(pick("dockerhub")).toEqual([
    "dockerhub",
    "docker.io",
    "https://registry-1.docker.io",
    ["docker.example.com"],
    true,
    "https://docker.example.com",
    "https://auth.docker.io/token",
    "registry.docker.io",
  ]);
  expect(pick("ghcr")).toEqual(["ghcr", "ghcr.io", "https://ghcr.io", ["ghcr.example.com"], false, "https://docker.example.com", "https://ghcr.io/token", "ghcr.io"]);
  expect(routeByHost(table, "ghcr.example.com:443").upstream.name).toBe("ghcr");
  expect(routeByHost(table, "unknown.example.com").upstream.name).toBe("dockerhub");
});

test("[tls] is optional while HTTPS is off, and placeholder paths are accepted then", async () => {
  const path = await write("http-only.toml", `[server]\nhttp_port = 8080\nhttps_enabled = false\n[tls]\ncert_path = "/nope"\nkey_path = "/nope"\n`);
  expect((await loadConfig({ path, env: {} })).config.server.http_port).toBe(8080);
});

test("environment overrides the file, flags override the environment", async () => {
  const path = await write("base.toml", `[server]\nhttp_port = 8080\n`);
  const env = { DOCXY_SERVER_HTTP_PORT: "9090", DOCXY_SERVER_BIND: "127.0.0.1,::1", DOCXY_UPSTREAM_HEADER_TIMEOUT: "7" };
  const { config } = await loadConfig({ path, env });
  expect(config.server.http_port).toBe(9090);
  expect(config.server.bind).toEqual(["127.0.0.1", "::1"]);
  expect(config.upstream.header_timeout).toBe(7);
  const flagged = await loadConfig({ path, env, overrides: { "server.http_port": "7070" } });
  expect(flagged.config.server.http_port).toBe(7070);
});

test("WHARF_CONFIG and DOCXY_CONFIG locate the file, extension optional", async () => {
  await write("migrant.toml", `[server]\nhttp_port = 6060\n`);
  expect((await loadConfig({ env: { WHARF_CONFIG: join(dir, "migrant") } })).config.server.http_port).toBe(6060);
  expect((await loadConfig({ env: { DOCXY_CONFIG: join(dir, "migrant.toml") } })).source).toBe(join(dir, "migrant.toml"));
});

test("every problem is one line naming the real key", async () => {
  const path = await write(
    "bad.toml",
    `[server]\nhttp_port = "eighty"\n[[registry.upstreams]]\nname = "has space"\nupstream_registry = "https://x"\n`,
  );
  const lines = await problems(path);
  expect(lines).toHaveLength(2);
  expect(lines[0]).toContain("server.http_port: Expected integer");
  expect(lines[1]).toContain("registry.upstreams[0].name");
});

test("semantic problems name their keys too", async () => {
  const path = await write(
    "semantic.toml",
    `[server]\nhttps_enabled = true\npublic_base_url = "https://x.example.com/path?q"\n[registry]\ndefault = "nope"\n[[registry.upstreams]]\nname = "hub"\nupstream_registry = "ftp://x"\n`,
  );
  const lines = (await problems(path)).join("\n");
  expect(lines).toContain("tls: required when server.https_enabled = true");
  expect(lines).toContain("server.public_base_url: must be a bare origin");
  expect(lines).toContain("registry.upstreams[0].upstream_registry: must be an http:// or https:// URL");
  expect(lines).toContain('registry.default: no upstream named "nope"');
});

test("a bad environment value is reported under its key", async () => {
  const lines = await problems(await write("empty.toml", ""), { DOCXY_SERVER_HTTPS_ENABLED: "maybe" });
  expect(lines.join("\n")).toContain("server.https_enabled");
});

test("invalid TOML and a missing file are reported, not thrown raw", async () => {
  expect((await problems(await write("broken.toml", "[server\nx="))).join()).toContain("not valid TOML");
  expect((await problems(join(dir, "absent.toml"))).join()).toContain("config file not found");
});

test("unknown keys are warnings", async () => {
  const { warnings } = await loadConfig({ path: await write("typo.toml", `[server]\nhttp_prot = 1\n`), env: {} });
  expect(warnings).toEqual(["unknown key server.http_prot is ignored"]);
});

test("cache sizes and durations are checked where they are written, each with its own line", async () => {
  const path = await write(
    "cache.toml",
    `[cache]\nmax_size = "lots"\nmax_fill_bytes = "plenty"\nmax_age = 1.5\ntag_ttl = "soon"\ntag_ttl_overrides = { "latest" = "10x", "v*" = "5s" }\n[auth]\ntoken_ttl = "1w"\n[limits]\nbytes_per_second = "fast"\n`,
  );
  const size = '"50GiB", "500MB", "1.5G" or a number of bytes';
  const duration = '"30s", "5m", "2h", "7d" or a number of seconds';
  expect((await problems(path)).sort()).toEqual(
    [
      `${path}: cache.max_size: invalid size "lots": expected ${size}`,
      `${path}: cache.max_fill_bytes: invalid size "plenty": expected ${size}`,
      `${path}: cache.tag_ttl: invalid duration "soon": expected ${duration}`,
      `${path}: cache.tag_ttl_overrides."latest": invalid duration "10x": expected ${duration}`,
      `${path}: auth.token_ttl: invalid duration "1w": expected ${duration}`,
      `${path}: limits.bytes_per_second: invalid size "fast": expected ${size}`,
    ].sort(),
  );
});

test("the loaded configuration holds sizes in bytes and durations in milliseconds, defaults included", async () => {
  const { config } = await loadConfig({ env: {} });
  expect([config.cache.max_size, config.cache.max_age, config.cache.tag_ttl, config.cache.max_fill_bytes, config.auth.token_ttl, config.limits.bytes_per_second]).toEqual([
    20 * 1024 ** 3,
    30 * 86_400_000,
    60_000,
    0,
    300_000,
    0,
  ]);
  const path = await write("units.toml", `[cache]\nmax_size = "500MB"\nmax_age = 3600\ntag_ttl_overrides = { "latest" = "10s", "library/*:edge" = 2 }\n`);
  const written = (await loadConfig({ path, env: {} })).config;
  expect([written.cache.max_size, written.cache.max_age, written.cache.tag_ttl_overrides]).toEqual([500_000_000, 3_600_000, { latest: 10_000, "library/*:edge": 2000 }]);
});

test("sizes and durations from the environment and from flags are decoded like the file's", async () => {
  const path = await write("units-base.toml", `[cache]\nmax_size = "1GiB"\n`);
  const env = { DOCXY_CACHE_MAX_SIZE: "2GiB", DOCXY_CACHE_TAG_TTL: "90", DOCXY_LIMITS_BYTES_PER_SECOND: "10MB" };
  const { config } = await loadConfig({ path, env });
  expect([config.cache.max_size, config.cache.tag_ttl, config.limits.bytes_per_second]).toEqual([2 * 1024 ** 3, 90_000, 10_000_000]);
  const flagged = await loadConfig({ path, env, overrides: { "cache.max_size": "3g", "auth.token_ttl": "2m" } });
  expect([flagged.config.cache.max_size, flagged.config.auth.token_ttl]).toEqual([3 * 1024 ** 3, 120_000]);
  expect(await problems(path, { DOCXY_CACHE_MAX_AGE: "forever" })).toEqual([
    `${path}: cache.max_age: invalid duration "forever": expected "30s", "5m", "2h", "7d" or a number of seconds`,
  ]);
});

test("a size or duration of the wrong type is a schema problem, reported before any unit is read", async () => {
  const path = await write("units-type.toml", `[cache]\nmax_size = true\ntag_ttl = "soon"\n`);
  const lines = await problems(path);
  expect(lines).toHaveLength(1);
  expect(lines[0]).toStartWith(`${path}: cache.max_size: Expected union value`);
});

test("a rate limit with sendfile is refused, whatever unit it is written in", async () => {
  const path = await write("sendfile-rate.toml", `[server]\nsendfile_enabled = true\n[limits]\nbytes_per_second = "1KiB"\n`);
  expect((await problems(path)).join("\n")).toContain("limits.bytes_per_second could not shape them");
  const off = await write("sendfile-no-rate.toml", `[server]\nsendfile_enabled = true\n[limits]\nbytes_per_second = "0MB"\n`);
  expect((await loadConfig({ path: off, env: {} })).config.limits.bytes_per_second).toBe(0);
});

test("issue 16's S3 and fleet keys load as written, with the flat fleet keys overridable from the environment", async () => {
  const secretFile = await write("fleet-secret", `${"f".repeat(40)}\n`);
  const path = await write(
    "fleet.toml",
    `[cache]
storage = "s3"
dir = "/var/lib/docxy"
[cache.s3]
endpoint = "http://127.0.0.1:9000"
bucket = "docxy"
region = "us-east-1"
access_key_id = "AKIAEXAMPLE"
secret_access_key = "example-secret"
prefix = "eu/"
hot_tier_size = "50GiB"
presigned_redirect = true
presigned_ttl = "10m"
[fleet]
redis_url = "redis://127.0.0.1:6379"
advertise_url = "http://10.0.0.5:5000"
secret_file = "${secretFile}"
`,
  );
  const { config, warnings } = await loadConfig({ path, env: { DOCXY_FLEET_ADVERTISE_URL: "http://10.0.0.6:5000", DOCXY_FLEET_ON_UNREACHABLE: "exit" } });
  expect(warnings).toEqual([]);
  expect(config.cache.storage).toBe("s3");
  expect(config.cache.s3).toEqual({
    endpoint: "http://127.0.0.1:9000",
    bucket: "docxy",
    region: "us-east-1",
    access_key_id: "AKIAEXAMPLE",
    secret_access_key: "example-secret",
    prefix: "eu/",
    hot_tier_size: 50 * 1024 ** 3,
    presigned_redirect: true,
    presigned_ttl: 10 * 60_000,
  });
  expect(config.fleet).toEqual({ redis_url: "redis://127.0.0.1:6379", advertise_url: "http://10.0.0.6:5000", secret: "", secret_file: secretFile, on_unreachable: "exit" });
  const lines = await problems(path, { DOCXY_FLEET_SECRET: "too short" });
  expect(lines).toEqual([`${path}: fleet.secret: set either secret or secret_file, not both`, `${path}: fleet.secret: must be at least 32 characters`]);
  expect(lines.join("\n")).not.toContain("too short");
});

test("[cache.s3]'s keys are overridable from the environment and by flag, as the keys of a section are", async () => {
  const path = await write("s3-env.toml", `[cache]\nstorage = "s3"\n[cache.s3]\nendpoint = "http://127.0.0.1:9000"\nbucket = "from-file"\n`);
  const env = {
    DOCXY_CACHE_S3_ENDPOINT: "http://10.0.0.9:8080",
    DOCXY_CACHE_S3_BUCKET: "from-env",
    DOCXY_CACHE_S3_REGION: "eu-west-1",
    DOCXY_CACHE_S3_ACCESS_KEY_ID: "AKIAENV",
    DOCXY_CACHE_S3_SECRET_ACCESS_KEY: "env-secret",
    DOCXY_CACHE_S3_PREFIX: "fleet/",
    DOCXY_CACHE_S3_HOT_TIER_SIZE: "1GiB",
    DOCXY_CACHE_S3_PRESIGNED_REDIRECT: "true",
    DOCXY_CACHE_S3_PRESIGNED_TTL: "90s",
  };
  const { config } = await loadConfig({ path, env });
  expect(config.cache.s3).toEqual({
    endpoint: "http://10.0.0.9:8080",
    bucket: "from-env",
    region: "eu-west-1",
    access_key_id: "AKIAENV",
    secret_access_key: "env-secret",
    prefix: "fleet/",
    hot_tier_size: 1024 ** 3,
    presigned_redirect: true,
    presigned_ttl: 90_000,
  });
  const flagged = await loadConfig({ path, env, overrides: { "cache.s3.bucket": "from-flag" } });
  expect(flagged.config.cache.s3.bucket).toBe("from-flag");
  // A table is set through its keys, and a key that is not there is named as written.
  expect(await problems(path, {})).toEqual([
    `${path}: cache.s3.access_key_id: required (or AWS_ACCESS_KEY_ID in the environment)`,
    `${path}: cache.s3.secret_access_key: required (or AWS_SECRET_ACCESS_KEY in the environment)`,
  ]);
  await expect(loadConfig({ path, env, overrides: { "cache.s3.nope": "x" } })).rejects.toThrow("cache.s3.nope: unknown key");
  await expect(loadConfig({ path, env, overrides: { "cache.s3": "x" } })).rejects.toThrow("cache.s3: unknown key");
});

test("S3 credentials may come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY of the environment given, not docxy's own", async () => {
  const path = await write("s3-aws.toml", `[cache]\nstorage = "s3"\n[cache.s3]\nendpoint = "http://127.0.0.1:9000"\nbucket = "docxy"\n`);
  const { config } = await loadConfig({ path, env: { AWS_ACCESS_KEY_ID: "AKIA", AWS_SECRET_ACCESS_KEY: "secret" } });
  expect(config.cache.s3.access_key_id).toBe(""); // read at open, never copied into the configuration
  expect((await problems(path, {})).length).toBe(2);
});

/** A valid value for each list of strings in the schema; the test below fails when a new one is missing here. */
const LIST_SAMPLES: Record<string, string> = {
  "server.bind": "127.0.0.1",
  "registry.upstreams[].hosts": "ghcr.example.com",
  "tls.acme_domains": "docxy.example.com",
  "auth.tokens": "ci:0123456789abcdef0123",
  "access.allow": "10.0.0.0/8",
  "access.deny": "10.1.0.0/16",
  "access.trusted_proxies": "127.0.0.1/32",
  "policy.allow": "docker.io/library/*",
  "policy.deny": "docker.io/library/ubuntu",
  "policy.allow_tags": "v*",
  "cache.pin": "alpine:3.20",
};

/** Every list of strings the schema has, as `section.key` (`[]` for an array of tables on the way). */
function stringLists(schema: TSchema, path: string): string[] {
  if (schema.type === "array") {
    const items = schema.items as TSchema;
    return items.type === "string" ? [path] : stringLists(items, `${path}[]`);
  }
  if (schema.type !== "object" || !schema.properties) return [];
  return Object.entries(schema.properties as Record<string, TSchema>).flatMap(([key, child]) => stringLists(child, path ? `${path}.${key}` : key));
}

/** TOML setting `key` (from LIST_SAMPLES) to `value`, written as TOML. */
function listToml(key: string, value: string): string {
  if (key === "registry.upstreams[].hosts") return `[[registry.upstreams]]\nname = "ghcr"\nhosts = ${value}\n`;
  const [section, name] = key.split(".");
  return `[${section}]\n${name} = ${value}\n`;
}

test("every list of strings also takes one string, in the file, the environment and flags, with the same result", async () => {
  expect(stringLists(ConfigSchema, "").sort()).toEqual(Object.keys(LIST_SAMPLES).sort());
  for (const [key, sample] of Object.entries(LIST_SAMPLES)) {
    const asArray = (await loadConfig({ path: await write("list-array.toml", listToml(key, JSON.stringify([sample]))), env: {} })).config;
    const asString = (await loadConfig({ path: await write("list-string.toml", listToml(key, JSON.stringify(sample))), env: {} })).config;
    expect(asString).toEqual(asArray);
    if (key.includes("[]")) continue; // inside an array of tables: the file's (or DOCXY_REGISTRY_UPSTREAMS' JSON) only
    const empty = await write("list-none.toml", "");
    const viaEnv = (await loadConfig({ path: empty, env: { [`DOCXY_${key.replace(".", "_").toUpperCase()}`]: sample } })).config;
    const viaFlag = (await loadConfig({ path: empty, env: {}, overrides: { [key]: sample } })).config;
    expect(viaEnv).toEqual(asArray);
    expect(viaFlag).toEqual(asArray);
  }
  const hosts = (await loadConfig({ path: await write("list-json.toml", ""), env: { DOCXY_REGISTRY_UPSTREAMS: '[{"name":"ghcr","hosts":"ghcr.example.com"}]' } })).config;
  expect(upstreamTableFromConfig(hosts).byName("ghcr")?.hosts).toEqual(["ghcr.example.com"]);
});

test("a list of the wrong type is still reported under its key, saying what it takes", async () => {
  const lines = await problems(await write("list-bad.toml", `[server]\nbind = 5\n[[registry.upstreams]]\nname = "ghcr"\nhosts = true\n[policy]\ndeny = [1]\n`));
  expect(lines).toEqual([
    expect.stringContaining("server.bind: Expected a string or an array of strings (got 5)"),
    expect.stringContaining("registry.upstreams[0].hosts: Expected a string or an array of strings (got true)"),
    expect.stringContaining("policy.deny[0]: Expected string (got 1)"),
  ]);
});

test("fallbacks in TOML: URLs and tables mix in one array, and a fallback's account must have a readable secret", async () => {
  const path = await write(
    "fallbacks.toml",
    `[[registry.upstreams]]\nname = "dockerhub"\nfallbacks = ["https://mirror.gcr.io", { url = "https://mirror.corp", credentials = [{ username = "bot", password_env = "MIRROR_PW" }] }]\n`,
  );
  const { config } = await loadConfig({ path, env: { MIRROR_PW: "pw" } });
  expect(upstreamTableFromConfig(config).byName("dockerhub")?.fallbacks?.map((f) => f.url)).toEqual(["https://mirror.gcr.io", "https://mirror.corp"]);
  expect(await problems(path, {})).toEqual([`${path}: registry.upstreams[0].fallbacks[1].credentials[0].password_env: MIRROR_PW is not set`]);
  const one = await write("fallback-one.toml", `[[registry.upstreams]]\nname = "dockerhub"\nfallbacks = "https://mirror.gcr.io"\n`);
  expect(upstreamTableFromConfig((await loadConfig({ path: one, env: {} })).config).byName("dockerhub")?.fallbacks?.map((f) => f.url)).toEqual(["https://mirror.gcr.io"]);
});
