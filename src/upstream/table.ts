/**
 * The upstream registries this proxy may reach. Only upstreams in this table
 * are ever contacted: routing never turns a client-supplied host into an
 * outbound request.
 *
 * The table starts from the built-in well-known registries; Wharf's legacy
 * `[registry]` keys describe the default upstream, and each
 * `[[registry.upstreams]]` entry overrides a built-in of the same name key by
 * key, or adds a new upstream. A token realm and service not set explicitly
 * are Docker Hub's only for Docker Hub's URL, else learnt from the upstream.
 */
import type { Config, FallbackEntry, UpstreamEntry } from "../config/schema";
import { BUILTIN_UPSTREAMS, type BuiltinUpstream } from "./builtins";
import { fallbackUpstream } from "./fallbacks";
import { parseProxyUrl, type OutboundProxy } from "./proxy-url";

export interface Upstream {
  /** Name used in `/auth/<name>/token` (case-insensitive). */
  name: string;
  /** Registry host clients write in image names (`ghcr.io`): path prefix and `?ns=` value. */
  registry: string;
  /** Registry base URL without trailing slash, e.g. https://registry-1.docker.io */
  url: string;
  /** Host names (normalised) whose requests go to this upstream. */
  hosts: string[];
  /** Token realm and service; undefined until configured or discovered. */
  authRealm?: string;
  authService?: string;
  autoLibraryPrefix: boolean;
  /** External origin of the proxy for this upstream, when configured. */
  publicBaseUrl?: string;
  /** Redirects may lead to any loopback, private, link-local or metadata address (redirect-policy.ts); default false. */
  allowPrivateRedirects?: boolean;
  /** Origins asked in order when this one is in trouble (fallbacks.ts); not in the table, never routed to. */
  fallbacks?: readonly Upstream[];
  /** Every request for this upstream goes through this proxy (client.ts), instead of the environment's. */
  proxy?: OutboundProxy;
}

export class UpstreamTable {
  readonly all: readonly Upstream[];
  readonly default: Upstream;

  constructor(upstreams: Upstream[], defaultName: string) {
    if (upstreams.length === 0) throw new Error("at least one upstream is required");
    this.all = upstreams;
    this.default = this.byName(defaultName) ?? upstreams[0]!;
  }

  byName(name: string): Upstream | undefined {
    const wanted = name.toLowerCase();
    return this.all.find((u) => u.name.toLowerCase() === wanted);
  }

  /** The upstream a registry host (`ghcr.io`, or the upstream URL's own host) names. */
  byRegistry(host: string): Upstream | undefined {
    const wanted = host.toLowerCase();
    return this.all.find((u) => u.registry === wanted || new URL(u.url).host === wanted);
  }

  /** The upstream whose `hosts` list the request's host (Wharf's rule, §1.4). */
  byHost(host: string | null): Upstream | undefined {
    const wanted = host ? normaliseHost(host) : "";
    return wanted ? this.all.find((u) => u.hosts.includes(wanted)) : undefined;
  }
}

type Draft = Omit<Upstream, "url" | "fallbacks"> & { url?: string; enabled: boolean; fallbackUrls: string[] };

export function upstreamTableFromConfig(config: Config): UpstreamTable {
  const { registry, server } = config;
  const fallbackBase = blankToUndefined(registry.public_base_url) ?? blankToUndefined(server.public_base_url);
  const drafts = new Map<string, Draft>();
  if (registry.builtin_upstreams) {
    for (const b of BUILTIN_UPSTREAMS) drafts.set(b.name, { ...b, hosts: [], allowPrivateRedirects: false, fallbackUrls: [] });
  }
  const entries: UpstreamEntry[] =
    registry.upstreams.length > 0
      ? registry.upstreams
      : // Wharf's single-upstream form: the legacy keys describe the default upstream,
        // which serves Docker Hub's names (registry-mirrors, ns=docker.io) unless it is a built-in.
        [
          {
            name: registry.default,
            registry: BUILTIN_UPSTREAMS.find((b) => b.name === registry.default.toLowerCase())?.registry ?? "docker.io",
            upstream_registry: registry.upstream_registry,
            auth_realm: registry.auth_realm,
            auth_service: registry.auth_service,
            auto_library_prefix: registry.auto_library_prefix,
            fallbacks: registry.fallbacks,
          },
        ];
  for (const entry of entries) {
    const key = [...drafts.keys()].find((k) => k.toLowerCase() === entry.name.toLowerCase()) ?? entry.name;
    drafts.set(key, merge(drafts.get(key), entry));
  }

  const upstreams = [...drafts.values()]
    .filter((d): d is Draft & { url: string } => d.enabled && d.url !== undefined)
    .map(({ enabled: _, fallbackUrls, ...u }): Upstream => {
      const upstream = { ...u, publicBaseUrl: u.publicBaseUrl ?? (fallbackBase && trimSlash(fallbackBase)) };
      return { ...upstream, fallbacks: fallbackUrls.map((url) => fallbackUpstream(upstream, url)) };
    });
  return new UpstreamTable(upstreams, registry.default);
}

/** Applies the keys an entry sets on top of a built-in (or nothing, for a new upstream). */
function merge(base: Draft | undefined, entry: UpstreamEntry): Draft {
  const url = entry.upstream_registry !== undefined ? trimSlash(entry.upstream_registry) : base?.url;
  const registry = entry.registry ?? base?.registry ?? (url ? new URL(url).host : entry.name);
  return {
    name: base?.name ?? entry.name,
    registry: registry.toLowerCase(),
    url,
    hosts: entry.hosts?.map(normaliseHost) ?? base?.hosts ?? [],
    authRealm: blankToUndefined(entry.auth_realm) ?? builtinAt(url)?.authRealm,
    authService: blankToUndefined(entry.auth_service) ?? builtinAt(url)?.authService,
    autoLibraryPrefix: entry.auto_library_prefix ?? base?.autoLibraryPrefix ?? false,
    publicBaseUrl: mapDefined(blankToUndefined(entry.public_base_url), trimSlash) ?? base?.publicBaseUrl,
    allowPrivateRedirects: entry.allow_private_redirects ?? base?.allowPrivateRedirects ?? false,
    proxy: mapDefined(blankToUndefined(entry.proxy), parseProxyUrl) ?? base?.proxy,
    enabled: entry.enabled ?? base?.enabled ?? true,
    fallbackUrls: entry.fallbacks?.map(fallbackUrl) ?? base?.fallbackUrls ?? [],
  };
}

/** A fallback entry's URL (a bare string, or the `url` of a table with credentials). */
function fallbackUrl(entry: FallbackEntry): string {
  return typeof entry === "string" ? entry : entry.url;
}

/**
 * The built-in registry served at `url`, whose written-out token service
 * (Docker Hub's) then applies. Any other URL — another docxy, a CNCF
 * distribution, an internal mirror — has its realm and service discovered from
 * its own challenge unless the entry sets them: Docker Hub's realm there would
 * send every token request to auth.docker.io, which that upstream does not trust.
 */
function builtinAt(url: string | undefined): BuiltinUpstream | undefined {
  return url === undefined ? undefined : BUILTIN_UPSTREAMS.find((b) => b.url === url);
}

/** Lowercase, no trailing dot, no brackets around IPv6, no port (Wharf's normalisation). */
export function normaliseHost(host: string): string {
  let h = host.trim().toLowerCase().replace(/\.$/, "");
  if (h.startsWith("[")) return h.slice(1, h.indexOf("]") > 0 ? h.indexOf("]") : undefined);
  if (h.split(":").length === 2) h = h.slice(0, h.indexOf(":"));
  return h.replace(/\.$/, "");
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}

function blankToUndefined(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}

function mapDefined<T, R>(value: T | undefined, fn: (v: T) => R): R | undefined {
  return value === undefined ? undefined : fn(value);
}
