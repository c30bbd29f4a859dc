/**
 * Checks the schema cannot express: URLs that must be origins, TLS files that
 * must exist when HTTPS is on, names that must refer to something. Each
 * problem is one line that names the key (Wharf reported every mistake as a
 * "TLS" error, research/docxy.md §6.2).
 */
import { existsSync } from "node:fs";
import { parseImageEntry } from "../cache/image-list";
import { ImagePolicy } from "../policy/image-rules";
import { NetworkPolicy } from "../policy/network";
import { BUILTIN_UPSTREAMS } from "../upstream/builtins";
import { envProxies } from "../upstream/env-proxy";
import { parseProxyUrl } from "../upstream/proxy-url";
import { upstreamTableFromConfig } from "../upstream/table";
import type { Config, FallbackEntry } from "./schema";

/** What clients write as the registry part of an image name: a host with a dot or port, or localhost. */
const REGISTRY_HOST = /^(?:localhost|[a-z0-9-]+(?:\.[a-z0-9-]+)+|[a-z0-9.-]+:\d{1,5})(?::\d{1,5})?$/;

/**
 * `env` is where S3 credentials may come from instead (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY);
 * the loader should pass the environment it read overrides from.
 */
export function checkSemantics(config: Config, env: Record<string, string | undefined> = process.env): string[] {
  const problems: string[] = [];
  const { server, registry, tls } = config;

  if (!server.http_enabled && !server.https_enabled) {
    problems.push("server: http_enabled and https_enabled are both false; nothing would listen");
  }
  if (server.http_enabled && server.https_enabled && server.http_port !== 0 && server.http_port === server.https_port) {
    problems.push(`server.https_port: same port as server.http_port (${server.http_port})`);
  }
  if (server.https_enabled) {
    if (!tls || (!tls.acme_domains.length && (!tls.cert_path || !tls.key_path))) {
      problems.push("tls: required when server.https_enabled = true (cert_path and key_path, or acme_domains)");
    } else if (tls.acme_domains.length) {
      if (!server.http_enabled) problems.push("tls.acme_domains: ACME answers its HTTP-01 challenges on the HTTP port: set server.http_enabled = true");
      problems.push(...urlProblems("tls.acme_directory", tls.acme_directory));
      if (tls.acme_ca_root && !existsSync(tls.acme_ca_root)) problems.push(`tls.acme_ca_root: file not found: ${tls.acme_ca_root}`);
    } else {
      if (!existsSync(tls.cert_path)) problems.push(`tls.cert_path: file not found: ${tls.cert_path}`);
      if (!existsSync(tls.key_path)) problems.push(`tls.key_path: file not found: ${tls.key_path}`);
    }
  }

  if (server.sendfile_enabled) {
    const taken = [server.http_enabled && server.http_port, server.https_enabled && server.https_port];
    if (server.sendfile_port !== 0 && taken.includes(server.sendfile_port)) {
      problems.push(`server.sendfile_port: ${server.sendfile_port} is already the proxy's port`);
    }
    if (!config.cache.enabled) problems.push("server.sendfile_enabled: serves cache hits, so it needs cache.enabled = true");
    if (config.limits.bytes_per_second > 0) {
      problems.push("server.sendfile_enabled: the kernel sends those files, so limits.bytes_per_second could not shape them; use one or the other");
    }
    problems.push(...originProblems("server.sendfile_url", server.sendfile_url));
  }
  problems.push(...originProblems("server.public_base_url", server.public_base_url));
  problems.push(...originProblems("registry.public_base_url", registry.public_base_url));

  if (registry.upstreams.length === 0) {
    problems.push(...urlProblems("registry.upstream_registry", registry.upstream_registry));
    if (registry.auth_realm !== undefined) problems.push(...urlProblems("registry.auth_realm", registry.auth_realm));
  }
  const builtins = new Set(registry.builtin_upstreams ? BUILTIN_UPSTREAMS.map((b) => b.name) : []);
  const names = new Set(builtins);
  const seen = new Set<string>();
  registry.upstreams.forEach((upstream, i) => {
    const key = `registry.upstreams[${i}]`;
    const name = upstream.name.toLowerCase();
    if (seen.has(name)) problems.push(`${key}.name: duplicate upstream name ${JSON.stringify(upstream.name)}`);
    seen.add(name);
    names.add(name);
    if (upstream.upstream_registry !== undefined) problems.push(...urlProblems(`${key}.upstream_registry`, upstream.upstream_registry));
    else if (!builtins.has(name)) problems.push(`${key}.upstream_registry: required for an upstream that is not built in`);
    if (upstream.auth_realm !== undefined) problems.push(...urlProblems(`${key}.auth_realm`, upstream.auth_realm));
    if (upstream.registry !== undefined && !REGISTRY_HOST.test(upstream.registry)) {
      problems.push(`${key}.registry: must be a registry host like ghcr.io or registry.local:5000 (got ${JSON.stringify(upstream.registry)})`);
    }
    problems.push(...originProblems(`${key}.public_base_url`, upstream.public_base_url));
    problems.push(...fallbackProblems(`${key}.fallbacks`, upstream.fallbacks ?? [], upstream.upstream_registry));
    if (upstream.proxy?.trim()) problems.push(...proxyProblems(`${key}.proxy`, upstream.proxy));
  });
  for (const { name, problem } of envProxies(env)) if (problem !== undefined) problems.push(`environment ${name}: ${problem}`);
  if (registry.upstreams.length === 0) problems.push(...fallbackProblems("registry.fallbacks", registry.fallbacks, registry.upstream_registry));
  else if (registry.fallbacks.length > 0) {
    problems.push("registry.fallbacks: applies to the single-upstream form only; with [[registry.upstreams]] set fallbacks in the upstream's entry");
  }
  if (registry.upstreams.length > 0 && !names.has(registry.default.toLowerCase())) {
    problems.push(`registry.default: no upstream named ${JSON.stringify(registry.default)}`);
  }

  const { auth } = config;
  if (auth.enabled && !auth.htpasswd && auth.tokens.length === 0) {
    problems.push("auth: enabled = true needs users: an htpasswd file or tokens");
  }
  if (auth.htpasswd && !existsSync(auth.htpasswd)) problems.push(`auth.htpasswd: file not found: ${auth.htpasswd}`);
  if (auth.secret && auth.secret.length < 32) problems.push("auth.secret: must be at least 32 characters");
  auth.tokens.forEach((entry, i) => {
    if (!/^[^:\s]+:\S{16,}$/.test(entry)) problems.push(`auth.tokens[${i}]: must be "name:token" with a token of at least 16 characters`);
  });
  if (config.policy.file && !existsSync(config.policy.file)) problems.push(`policy.file: file not found: ${config.policy.file}`);
  const { access, policy } = config;
  try {
    new NetworkPolicy({ allow: access.allow, deny: access.deny, trustedProxies: access.trusted_proxies });
  } catch (error) {
    problems.push(`access: ${(error as Error).message}`);
  }
  try {
    // Registries are checked against the final table (built-ins and entries), once it can be built.
    new ImagePolicy({ allow: policy.allow, deny: policy.deny, allowTags: policy.allow_tags }, servedRegistries(config));
  } catch (error) {
    problems.push(`policy: ${(error as Error).message}`);
  }
  config.cache.pin.forEach((entry, i) => {
    try {
      parseImageEntry(entry);
    } catch (error) {
      problems.push(`cache.pin[${i}]: ${(error as Error).message}`);
    }
  });
  if (config.prewarm.file && !existsSync(config.prewarm.file)) problems.push(`prewarm.file: file not found: ${config.prewarm.file}`);
  problems.push(...storageProblems(config, env), ...fleetProblems(config));
  return problems;
}

/** The registries the upstream table serves, or undefined when the table cannot be built. */
function servedRegistries(config: Config): string[] | undefined {
  try {
    return upstreamTableFromConfig(config).all.map((upstream) => upstream.registry);
  } catch {
    return undefined;
  }
}

/** S3 bucket names (AWS's rules, which Swift's s3api applies too): 3–63 of a-z 0-9 . -, a letter or digit at each end. */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

const PRESIGNED_TTL_MAX_MS = 7 * 24 * 3600 * 1000;

/** What S3 storage needs to start; secrets are checked for presence only, never echoed. */
function storageProblems({ cache }: Config, env: Record<string, string | undefined>): string[] {
  const { s3 } = cache;
  // Only an object in a bucket has a URL to presign: on the filesystem the key would do nothing.
  if (cache.storage !== "s3") {
    return s3.presigned_redirect ? ['cache.s3.presigned_redirect: needs cache.storage = "s3" (blobs on the filesystem have no URL to presign)'] : [];
  }
  const problems: string[] = [];
  if (!s3.endpoint) problems.push('cache.s3.endpoint: required when cache.storage = "s3"');
  else {
    problems.push(...urlProblems("cache.s3.endpoint", s3.endpoint));
    // Credentials in the URL would be logged with it, and the client signs with the keys anyway.
    const url = URL.parse(s3.endpoint);
    if (url && (url.username || url.password)) problems.push("cache.s3.endpoint: must not contain credentials; set cache.s3.access_key_id and secret_access_key");
  }
  if (!s3.bucket) problems.push('cache.s3.bucket: required when cache.storage = "s3"');
  else if (!BUCKET.test(s3.bucket)) problems.push(`cache.s3.bucket: not a valid bucket name: ${JSON.stringify(s3.bucket)}`);
  if (!s3.region) problems.push("cache.s3.region: must not be empty");
  if (!s3.access_key_id && !env.AWS_ACCESS_KEY_ID) problems.push("cache.s3.access_key_id: required (or AWS_ACCESS_KEY_ID in the environment)");
  if (!s3.secret_access_key && !env.AWS_SECRET_ACCESS_KEY) {
    problems.push("cache.s3.secret_access_key: required (or AWS_SECRET_ACCESS_KEY in the environment)");
  }
  if (s3.prefix.startsWith("/")) problems.push(`cache.s3.prefix: must not start with "/" (got ${JSON.stringify(s3.prefix)})`);
  // SigV4's X-Amz-Expires is whole seconds, at most a week (S3 refuses longer).
  if (s3.presigned_redirect && (s3.presigned_ttl < 1000 || s3.presigned_ttl > PRESIGNED_TTL_MAX_MS)) problems.push("cache.s3.presigned_ttl: must be between 1s and 7d");
  return problems;
}

const REDIS_SCHEMES = new Set(["redis:", "rediss:", "redis+tls:", "redis+unix:", "redis+tls+unix:"]);

/**
 * A fleet coordinates in Redis (and shares its blobs in a bucket with cache.storage = "s3"; on the
 * filesystem each node keeps its own copies, which openFleet warns about); its nodes fetch fills in progress
 * from each other, so each must say where it is reached and prove it is a node. Fleet keys
 * without redis_url would silently run a single node: that is reported too.
 */
function fleetProblems({ fleet }: Config): string[] {
  const problems: string[] = [];
  if (!fleet.redis_url) {
    const orphans = (["advertise_url", "secret", "secret_file"] as const).filter((key) => fleet[key] !== "");
    if (orphans.length > 0) problems.push(`fleet.redis_url: required with fleet.${orphans.join(", fleet.")} (without it this node runs alone)`);
    return problems;
  }
  const url = URL.parse(fleet.redis_url);
  if (!url || !REDIS_SCHEMES.has(url.protocol)) problems.push("fleet.redis_url: must be a redis:// or rediss:// URL");
  if (!fleet.advertise_url) problems.push("fleet.advertise_url: required with fleet.redis_url (how the other nodes reach this one)");
  else problems.push(...originProblems("fleet.advertise_url", fleet.advertise_url));
  if (fleet.secret && fleet.secret_file) problems.push("fleet.secret: set either secret or secret_file, not both");
  else if (!fleet.secret && !fleet.secret_file) problems.push("fleet.secret: required with fleet.redis_url (or fleet.secret_file)");
  if (fleet.secret && fleet.secret.length < 32) problems.push("fleet.secret: must be at least 32 characters");
  if (fleet.secret_file && !existsSync(fleet.secret_file)) problems.push(`fleet.secret_file: file not found: ${fleet.secret_file}`);
  return problems;
}

/** Fallbacks are base URLs like upstream_registry, none the upstream itself (it would be asked twice), none twice. */
function fallbackProblems(key: string, entries: FallbackEntry[], primary: string | undefined): string[] {
  const seen = new Set([primary?.trim().replace(/\/+$/, "")]);
  return entries.flatMap((entry, i) => {
    const url = typeof entry === "string" ? entry : entry.url;
    const where = typeof entry === "string" ? `${key}[${i}]` : `${key}[${i}].url`;
    const problems = urlProblems(where, url);
    if (problems.length > 0) return problems;
    const trimmed = url.trim().replace(/\/+$/, "");
    if (seen.has(trimmed)) return [`${where}: ${trimmed} is already the upstream or an earlier fallback`];
    seen.add(trimmed);
    return [];
  });
}

function urlProblems(key: string, value: string): string[] {
  const url = URL.parse(value);
  if (!url || !/^https?:$/.test(url.protocol) || !url.hostname) {
    return [`${key}: must be an http:// or https:// URL (got ${JSON.stringify(value)})`];
  }
  return [];
}

/** The problem with a proxy URL, if any; parseProxyUrl's message says what to write and never repeats the credentials. */
function proxyProblems(key: string, value: string): string[] {
  try {
    parseProxyUrl(value);
    return [];
  } catch (error) {
    return [`${key}: ${(error as Error).message}`];
  }
}

/** Wharf's rules for public_base_url: an origin, nothing else (the realm and redirects are built on it). */
function originProblems(key: string, value: string | undefined): string[] {
  if (value === undefined || value.trim() === "") return [];
  const problems = urlProblems(key, value);
  if (problems.length > 0) return problems;
  const url = new URL(value);
  if (url.username || url.password || url.search || url.hash || (url.pathname !== "/" && url.pathname !== "")) {
    return [`${key}: must be a bare origin like https://docxy.example.com (got ${JSON.stringify(value)})`];
  }
  return [];
}
