/**
 * The upstream registries this proxy may reach, and how a request picks one.
 * Only upstreams in this table are ever contacted: routing never turns a
 * client-supplied host into an outbound request.
 */
import type { Config } from "../config/schema";

export interface Upstream {
  /** Name used in `/auth/<name>/token` (case-insensitive). */
  name: string;
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

  /** The upstream whose `hosts` list the request's host, else the default (Wharf's rule, §1.4). */
  forHost(host: string | null): Upstream {
    const wanted = host ? normaliseHost(host) : "";
    return (wanted && this.all.find((u) => u.hosts.includes(wanted))) || this.default;
  }
}

/** Builds the table from `[registry]`: the `[[registry.upstreams]]` list, or Wharf's legacy single-upstream keys. */
export function upstreamTableFromConfig(config: Config): UpstreamTable {
  const { registry, server } = config;
  const fallbackBase = blankToUndefined(registry.public_base_url) ?? blankToUndefined(server.public_base_url);
  if (registry.upstreams.length === 0) {
    return new UpstreamTable(
      [
        {
          name: registry.default,
          url: trimSlash(registry.upstream_registry),
          hosts: [],
          authRealm: registry.auth_realm,
          authService: registry.auth_service,
          autoLibraryPrefix: registry.auto_library_prefix,
          publicBaseUrl: fallbackBase && trimSlash(fallbackBase),
        },
      ],
      registry.default,
    );
  }
  const upstreams = registry.upstreams.map(
    (entry): Upstream => ({
      name: entry.name,
      url: trimSlash(entry.upstream_registry),
      hosts: entry.hosts.map(normaliseHost),
      authRealm: blankToUndefined(entry.auth_realm),
      authService: blankToUndefined(entry.auth_service),
      autoLibraryPrefix: entry.auto_library_prefix,
      publicBaseUrl: mapDefined(blankToUndefined(entry.public_base_url) ?? fallbackBase, trimSlash),
    }),
  );
  return new UpstreamTable(upstreams, registry.default);
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
