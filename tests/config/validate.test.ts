/** The checks the schema cannot express, in process on decoded configurations; each problem names its key. */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Value } from "@sinclair/typebox/value";
import { ConfigSchema, type Config } from "../../src/config/schema";
import { checkSemantics } from "../../src/config/validate";

const dir = mkdtempSync(join(tmpdir(), "docxy-validate-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const existing = join(dir, "present.pem");
writeFileSync(existing, "placeholder");

const config = (written: Record<string, unknown>): Config => Value.Decode(ConfigSchema, Value.Default(ConfigSchema, written));
const problems = (written: Record<string, unknown>) => checkSemantics(config(written));

test("the defaults are valid", () => {
  expect(problems({})).toEqual([]);
});

test("listeners: something must listen, on distinct ports", () => {
  expect(problems({ server: { http_enabled: false } })).toEqual(["server: http_enabled and https_enabled are both false; nothing would listen"]);
  expect(problems({ server: { https_enabled: true, http_port: 8443, https_port: 8443 }, tls: { cert_path: existing, key_path: existing } })).toEqual([
    "server.https_port: same port as server.http_port (8443)",
  ]);
});

test("HTTPS needs certificate files that exist, or ACME on the HTTP port", () => {
  expect(problems({ server: { https_enabled: true } })).toEqual(["tls: required when server.https_enabled = true (cert_path and key_path, or acme_domains)"]);
  expect(problems({ server: { https_enabled: true }, tls: { cert_path: existing, key_path: join(dir, "absent.key") } })).toEqual([
    `tls.key_path: file not found: ${join(dir, "absent.key")}`,
  ]);
  expect(problems({ server: { https_enabled: true, http_enabled: false }, tls: { acme_domains: ["x.example.com"], acme_directory: "ftp://ca" } })).toEqual([
    "tls.acme_domains: ACME answers its HTTP-01 challenges on the HTTP port: set server.http_enabled = true",
    'tls.acme_directory: must be an http:// or https:// URL (got "ftp://ca")',
  ]);
});

test("sendfile: its own port, the cache on, and no rate limit it could not apply", () => {
  expect(problems({ server: { sendfile_enabled: true, sendfile_port: 5000 }, cache: { enabled: false }, limits: { bytes_per_second: "1MB" } })).toEqual([
    "server.sendfile_port: 5000 is already the proxy's port",
    "server.sendfile_enabled: serves cache hits, so it needs cache.enabled = true",
    "server.sendfile_enabled: the kernel sends those files, so limits.bytes_per_second could not shape them; use one or the other",
  ]);
  expect(problems({ server: { sendfile_enabled: true }, limits: { bytes_per_second: "0MB" } })).toEqual([]);
});

test("public base URLs are bare origins", () => {
  expect(problems({ server: { public_base_url: "https://docxy.example.com/" }, registry: { public_base_url: "https://u:p@docxy.example.com" } })).toEqual([
    'registry.public_base_url: must be a bare origin like https://docxy.example.com (got "https://u:p@docxy.example.com")',
  ]);
});

test("upstreams: unique names, a URL unless built in, a registry host, a default that exists", () => {
  const upstreams = [
    { name: "lan", upstream_registry: "http://10.0.0.5:5000", registry: "Not A Host" },
    { name: "LAN", upstream_registry: "https://x" },
    { name: "mine" },
    { name: "ghcr", auth_realm: "realm" },
  ];
  expect(problems({ registry: { upstreams, default: "nowhere" } })).toEqual([
    'registry.upstreams[0].registry: must be a registry host like ghcr.io or registry.local:5000 (got "Not A Host")',
    'registry.upstreams[1].name: duplicate upstream name "LAN"',
    "registry.upstreams[2].upstream_registry: required for an upstream that is not built in",
    'registry.upstreams[3].auth_realm: must be an http:// or https:// URL (got "realm")',
    'registry.default: no upstream named "nowhere"',
  ]);
  expect(problems({ registry: { upstreams: [{ name: "ghcr" }], default: "quay" } })).toEqual([]);
  expect(problems({ registry: { builtin_upstreams: false, upstreams: [{ name: "ghcr" }] } })).toContain(
    "registry.upstreams[0].upstream_registry: required for an upstream that is not built in",
  );
});

test("fallbacks: http(s) URLs, neither the upstream itself nor twice; the legacy key only without [[registry.upstreams]]", () => {
  const upstreams = [{ name: "corp", upstream_registry: "https://harbor.corp/", fallbacks: ["ftp://x", "https://harbor.corp", { url: "https://m.corp" }, "https://m.corp/"] }];
  expect(problems({ registry: { upstreams, fallbacks: ["https://mirror.gcr.io"] } })).toEqual([
    'registry.upstreams[0].fallbacks[0]: must be an http:// or https:// URL (got "ftp://x")',
    "registry.upstreams[0].fallbacks[1]: https://harbor.corp is already the upstream or an earlier fallback",
    "registry.upstreams[0].fallbacks[3]: https://m.corp is already the upstream or an earlier fallback",
    "registry.fallbacks: applies to the single-upstream form only; with [[registry.upstreams]] set fallbacks in the upstream's entry",
  ]);
  expect(problems({ registry: { fallbacks: ["https://mirror.gcr.io", { url: "nope" }] } })).toEqual(['registry.fallbacks[1].url: must be an http:// or https:// URL (got "nope")']);
  expect(problems({ registry: { upstreams: [{ name: "dockerhub", fallbacks: ["https://mirror.gcr.io"] }] } })).toEqual([]);
});

test("proxy users: someone to log in, files that exist, a long enough secret, well-formed tokens", () => {
  expect(problems({ auth: { enabled: true, htpasswd: join(dir, "absent.htpasswd"), secret: "short", tokens: ["ci:short", "no-colon-token-long-enough"] } })).toEqual([
    `auth.htpasswd: file not found: ${join(dir, "absent.htpasswd")}`,
    "auth.secret: must be at least 32 characters",
    'auth.tokens[0]: must be "name:token" with a token of at least 16 characters',
    'auth.tokens[1]: must be "name:token" with a token of at least 16 characters',
  ]);
  expect(problems({ auth: { enabled: true } })).toEqual(["auth: enabled = true needs users: an htpasswd file or tokens"]);
});

test("a pin that can never name an image is refused with the fix; the pre-warm file must exist", () => {
  expect(problems({ cache: { pin: ["alpine:3.20 linux/amd64", "ghcr.io/acme/*:1.*", "registry-1.docker.io/library/alpine", "alpine amd64"] } })).toEqual([
    'cache.pin[2]: "registry-1.docker.io/library/alpine" can never name an image: Docker Hub\'s images are named "docker.io/…" here (write "docker.io/library/alpine")',
    'cache.pin[3]: platform "amd64" is not os/arch[/variant], e.g. linux/amd64,linux/arm64/v8',
  ]);
  expect(problems({ prewarm: { file: join(dir, "absent.txt"), interval: "6h" } })).toEqual([`prewarm.file: file not found: ${join(dir, "absent.txt")}`]);
  expect(config({ prewarm: { interval: "6h" } }).prewarm.interval).toBe(6 * 3600 * 1000);
});

test("networks and image rules are built once to find mistakes, and the policy file must exist", () => {
  const lines = problems({ access: { allow: ["10.0.0.0/33"] }, policy: { allow: ["docker.io/**"], file: join(dir, "absent-policy.toml") } });
  expect(lines[0]).toBe(`policy.file: file not found: ${join(dir, "absent-policy.toml")}`);
  expect(lines[1]).toStartWith('access: invalid network "10.0.0.0/33" in ');
  expect(lines).toHaveLength(2);
});

describe("S3 storage (issue 16)", () => {
  const s3 = { endpoint: "http://127.0.0.1:9000", bucket: "docxy", access_key_id: "AKIA", secret_access_key: "s3cr3t-value" };
  const check = (written: Record<string, unknown>, env: Record<string, string> = {}) => checkSemantics(config(written), env);

  test("a complete [cache.s3] is valid, and credentials may come from the environment instead", () => {
    expect(check({ cache: { storage: "s3", s3 } })).toEqual([]);
    const { access_key_id: _id, secret_access_key: _secret, ...keyless } = s3;
    expect(check({ cache: { storage: "s3", s3: keyless } }, { AWS_ACCESS_KEY_ID: "AKIA", AWS_SECRET_ACCESS_KEY: "x" })).toEqual([]);
  });

  test("s3 needs an endpoint, a bucket and both credentials, named by key", () => {
    expect(check({ cache: { storage: "s3" } })).toEqual([
      'cache.s3.endpoint: required when cache.storage = "s3"',
      'cache.s3.bucket: required when cache.storage = "s3"',
      "cache.s3.access_key_id: required (or AWS_ACCESS_KEY_ID in the environment)",
      "cache.s3.secret_access_key: required (or AWS_SECRET_ACCESS_KEY in the environment)",
    ]);
  });

  test("a malformed endpoint, bucket, region or prefix is reported, and a secret is never echoed", () => {
    const bad = { ...s3, endpoint: "http://key:s3cr3t-value@store:9000", bucket: "No_Such", region: "", prefix: "/docxy" };
    const lines = check({ cache: { storage: "s3", s3: bad } });
    expect(lines).toEqual([
      "cache.s3.endpoint: must not contain credentials; set cache.s3.access_key_id and secret_access_key",
      'cache.s3.bucket: not a valid bucket name: "No_Such"',
      "cache.s3.region: must not be empty",
      'cache.s3.prefix: must not start with "/" (got "/docxy")',
    ]);
    expect(lines.join("\n")).not.toContain("s3cr3t-value");
    expect(check({ cache: { storage: "s3", s3: { ...s3, endpoint: "s3.example.com" } } })).toEqual([
      'cache.s3.endpoint: must be an http:// or https:// URL (got "s3.example.com")',
    ]);
  });

  test("the filesystem default ignores [cache.s3]", () => {
    expect(check({ cache: { s3: { bucket: "No_Such" } } })).toEqual([]);
  });

  test("presigned redirects need the bucket, and a TTL S3 accepts (1s to 7d)", () => {
    expect(check({ cache: { s3: { presigned_redirect: true } } })).toEqual([
      'cache.s3.presigned_redirect: needs cache.storage = "s3" (blobs on the filesystem have no URL to presign)',
    ]);
    expect(check({ cache: { storage: "s3", s3: { ...s3, presigned_redirect: true, presigned_ttl: "7d" } } })).toEqual([]);
    for (const presigned_ttl of ["0s", "8d"]) {
      expect(check({ cache: { storage: "s3", s3: { ...s3, presigned_redirect: true, presigned_ttl } } })).toEqual([
        "cache.s3.presigned_ttl: must be between 1s and 7d",
      ]);
    }
  });
});

describe("fleet (issue 16)", () => {
  const cache = { storage: "s3", s3: { endpoint: "http://127.0.0.1:9000", bucket: "docxy", access_key_id: "AKIA", secret_access_key: "x" } };
  const fleet = { redis_url: "redis://127.0.0.1:6379", advertise_url: "http://10.0.0.5:5000", secret: "s".repeat(32) };
  const check = (written: Record<string, unknown>) => checkSemantics(config(written), {});

  test("a fleet on a bucket, with where this node is reached and a shared secret, is valid", () => {
    expect(check({ cache, fleet })).toEqual([]);
    expect(check({ cache, fleet: { ...fleet, redis_url: "rediss://:pw@redis.internal:6380", secret: "", secret_file: existing } })).toEqual([]);
  });

  test("a fleet needs an advertise_url and exactly one secret; on the filesystem each node keeps its own copies (openFleet warns)", () => {
    expect(check({ fleet })).toEqual([]);
    expect(check({ fleet: { redis_url: fleet.redis_url } })).toEqual([
      "fleet.advertise_url: required with fleet.redis_url (how the other nodes reach this one)",
      "fleet.secret: required with fleet.redis_url (or fleet.secret_file)",
    ]);
    expect(check({ cache, fleet: { ...fleet, secret_file: existing } })).toEqual(["fleet.secret: set either secret or secret_file, not both"]);
  });

  test("malformed fleet values are reported without echoing the Redis URL or the secret", () => {
    const bad = { redis_url: "http://:hunter2@redis:6379", advertise_url: "http://10.0.0.5:5000/path", secret: "short", secret_file: "" };
    const lines = check({ cache, fleet: bad });
    expect(lines).toEqual([
      "fleet.redis_url: must be a redis:// or rediss:// URL",
      'fleet.advertise_url: must be a bare origin like https://docxy.example.com (got "http://10.0.0.5:5000/path")',
      "fleet.secret: must be at least 32 characters",
    ]);
    expect(lines.join("\n")).not.toContain("hunter2");
    expect(check({ cache, fleet: { ...fleet, secret: "", secret_file: join(dir, "absent-secret") } })).toEqual([
      `fleet.secret_file: file not found: ${join(dir, "absent-secret")}`,
    ]);
  });

  test("fleet keys without redis_url are reported: the node would silently run alone", () => {
    expect(check({ fleet: { advertise_url: fleet.advertise_url, secret: fleet.secret } })).toEqual([
      "fleet.redis_url: required with fleet.advertise_url, fleet.secret (without it this node runs alone)",
    ]);
  });
});

test("an image rule for a registry no upstream serves is refused, judged on the final table (built-ins and entries)", () => {
  const refused = problems({ policy: { deny: ["example.invalid/foo/*"] } });
  expect(refused).toHaveLength(1);
  expect(refused[0]).toStartWith('policy: image pattern "example.invalid/foo/*" in deny can never match: no upstream serves the registry example.invalid (served: docker.io, ghcr.io,');
  expect(refused[0]).toEndWith('add an upstream for it ([[registry.upstreams]] with registry = "example.invalid")');
  // An entry that serves it, a built-in, and an upstream the entries take away:
  expect(problems({ policy: { deny: ["example.invalid/foo/*"] }, registry: { upstreams: [{ name: "ex", upstream_registry: "https://example.invalid" }] } })).toEqual([]);
  expect(problems({ policy: { allow: ["docker.elastic.co/elasticsearch/*"] } })).toEqual([]);
  expect(problems({ policy: { allow: ["quay.io/x/*"] }, registry: { upstreams: [{ name: "quay", enabled: false }] } })[0]).toContain("no upstream serves the registry quay.io");
  expect(problems({ policy: { allow: ["ghcr.io/x/*"] }, registry: { builtin_upstreams: false } })[0]).toContain("(served: docker.io)");
});
