/**
 * Which upstream a request is for. In order of precedence:
 * 1. containerd's `?ns=<registry>` (sent on every request to a hosts.toml
 *    mirror; dist-spec main "Registry Proxying");
 * 2. a path prefix naming the registry: `/v2/ghcr.io/owner/img/manifests/tag`;
 * 3. the request's Host, matched against an upstream's `hosts`;
 * 4. the default upstream (Docker Hub), which Docker's `registry-mirrors`
 *    relies on (no prefix, no ns).
 *
 * A registry named by `ns` or by a prefix must be in the table: anything else
 * is a NAME_UNKNOWN error, never a request to a host the operator did not list
 * (one popular worker proxies any `ns` and is an open proxy).
 *
 * Only host-like prefixes count (oci/reference.ts `isRegistryHost`): short
 * names such as `/v2/ghcr/...` are deliberately not prefixes, since `ghcr` or
 * `quay` can be a Docker Hub namespace, which `registry-mirrors` sends bare.
 * The path grammar itself is oci/paths.ts.
 */
import { RegistryError } from "../oci/errors";
import { registryPrefix } from "../oci/paths";
import { isRegistryHost } from "../oci/reference";
import type { Upstream, UpstreamTable } from "./table";

export type RouteVia = "ns" | "prefix" | "host" | "default";

export interface Route {
  upstream: Upstream;
  via: RouteVia;
  /** The registry prefix the client put in the repository name (`ghcr.io`), when routed by prefix. */
  prefix?: string;
}

/** A request's routing inputs, already taken apart by the HTTP layer. */
export interface RoutingInput {
  ns: string | null;
  host: string | null;
}

/**
 * Routes a `/v2/` API path (`rest` is the part after `/v2/`) and returns the
 * path as the upstream knows it (without the routing prefix).
 */
export function routePull(table: UpstreamTable, input: RoutingInput, rest: string): { route: Route; rest: string } {
  if (input.ns !== null) return { route: { upstream: knownRegistry(table, input.ns), via: "ns" }, rest };
  const prefixed = registryPrefix(rest);
  if (prefixed) {
    const { registry } = prefixed;
    return { route: { upstream: knownRegistry(table, registry), via: "prefix", prefix: registry }, rest: prefixed.rest };
  }
  return { route: routeByHost(table, input.host), rest };
}

/**
 * Routes a token request. Its scopes name the repositories the client is
 * about to pull, as the client calls them: a registry prefix there wins, since
 * Docker and containers/image ask the realm of their `/v2/` ping for every
 * image, whatever registry the path prefix picked.
 */
export function routeToken(table: UpstreamTable, input: RoutingInput, scopes: string[], named?: Upstream): Route {
  for (const name of scopes.flatMap(repositoryNames)) {
    const first = name.split("/")[0]!;
    if (name.includes("/") && isRegistryHost(first)) {
      return { upstream: knownRegistry(table, first.toLowerCase()), via: "prefix", prefix: first.toLowerCase() };
    }
  }
  if (named) return { upstream: named, via: "default" };
  return routeByHost(table, input.host);
}

export function routeByHost(table: UpstreamTable, host: string | null): Route {
  const upstream = table.byHost(host);
  return upstream ? { upstream, via: "host" } : { upstream: table.default, via: "default" };
}

/** Repository names in space-separated scopes (`repository:<name>:<actions>`; names may hold `host:port`). */
export function repositoryNames(scopes: string): string[] {
  return scopes
    .split(" ")
    .filter((s) => s.startsWith("repository:") && s.lastIndexOf(":") > "repository:".length)
    .map((s) => s.slice("repository:".length, s.lastIndexOf(":")));
}

/** The upstream a client-named registry host (`ns` or prefix) refers to; only listed ones exist. */
export function knownRegistry(table: UpstreamTable, registry: string): Upstream {
  const upstream = table.byRegistry(registry);
  if (!upstream) {
    throw new RegistryError("NAME_UNKNOWN", `registry ${JSON.stringify(registry)} is not proxied here`, {
      detail: { registry },
    });
  }
  return upstream;
}
