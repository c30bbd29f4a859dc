/** The checks the schema cannot express, in process on decoded configurations; each problem names its key. */
import { afterAll, expect, test } from "bun:test";
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

test("proxy users: someone to log in, files that exist, a long enough secret, well-formed tokens", () => {
  expect(problems({ auth: { enabled: true, htpasswd: join(dir, "absent.htpasswd"), secret: "short", tokens: ["ci:short", "no-colon-token-long-enough"] } })).toEqual([
    `auth.htpasswd: file not found: ${join(dir, "absent.htpasswd")}`,
    "auth.secret: must be at least 32 characters",
    'auth.tokens[0]: must be "name:token" with a token of at least 16 characters',
    'auth.tokens[1]: must be "name:token" with a token of at least 16 characters',
  ]);
  expect(problems({ auth: { enabled: true } })).toEqual(["auth: enabled = true needs users: an htpasswd file or tokens"]);
});

test("networks and image rules are built once to find mistakes, and the policy file must exist", () => {
  const lines = problems({ access: { allow: ["10.0.0.0/33"] }, policy: { allow: ["docker.io/**"], file: join(dir, "absent-policy.toml") } });
  expect(lines[0]).toBe(`policy.file: file not found: ${join(dir, "absent-policy.toml")}`);
  expect(lines[1]).toStartWith('access: invalid network "10.0.0.0/33" in ');
  expect(lines).toHaveLength(2);
});
