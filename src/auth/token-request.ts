/**
 * Turning a client's token request into the upstream token service's.
 *
 * GET (distribution docs/spec/auth/token.md): the configured `service` comes
 * first, then every client parameter in order — repeated `scope` kept,
 * because containerd sends two — except the client's own `service`.
 * POST (docs/spec/auth/oauth.md): the same for the form, where `scope` is one
 * field of space-separated scopes. containerd POSTs whenever it has
 * credentials; Docker does when it holds an identity token.
 */
import type { Upstream } from "../upstream/table";

export function upstreamTokenQuery(clientQuery: URLSearchParams, service: string, upstream: Upstream): URLSearchParams {
  const out = new URLSearchParams({ service });
  for (const [key, value] of clientQuery) {
    if (key.toLowerCase() === "service") continue;
    out.append(key, key === "scope" ? rewriteScopes(value, upstream) : value);
  }
  return out;
}

/** The OAuth2 form has the same rules as the query. */
export const upstreamTokenForm = upstreamTokenQuery;

/**
 * `repository:alpine:pull` → `repository:library/alpine:pull` when the
 * upstream wants the library/ prefix, matching the rewrite of the pull path.
 * Only three-part repository scopes are touched: a name with `host:port`
 * makes four parts and is left alone (scope.md: names may contain colons).
 */
export function rewriteScopes(scopes: string, upstream: Upstream): string {
  if (!upstream.autoLibraryPrefix) return scopes;
  return scopes
    .split(" ")
    .map((scope) => {
      const parts = scope.split(":");
      if (parts.length !== 3 || parts[0] !== "repository" || parts[1]!.includes("/") || parts[1] === "") return scope;
      return `repository:library/${parts[1]}:${parts[2]}`;
    })
    .join(" ");
}
