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

/** `prefix`: the registry prefix the client's repository names carry when it pulls by path prefix. */
export function upstreamTokenQuery(clientQuery: URLSearchParams, service: string, upstream: Upstream, prefix?: string): URLSearchParams {
  const out = new URLSearchParams({ service });
  for (const [key, value] of clientQuery) {
    if (key.toLowerCase() === "service") continue;
    out.append(key, key === "scope" ? rewriteScopes(value, upstream, prefix) : value);
  }
  return out;
}

/** The OAuth2 form has the same rules as the query. */
export const upstreamTokenForm = upstreamTokenQuery;

/**
 * Repository names in scopes, as the upstream knows them: without the routing
 * prefix the client put in front (`ghcr.io/x/y` → `x/y`), and with `library/`
 * when the upstream wants it (`alpine` → `library/alpine`), matching the
 * rewrite of the pull path. Other scopes pass unchanged.
 */
export function rewriteScopes(scopes: string, upstream: Upstream, prefix?: string): string {
  return scopes
    .split(" ")
    .map((scope) => {
      const match = /^repository:(.+):([^:]*)$/.exec(scope);
      if (!match) return scope;
      let name = match[1]!;
      if (prefix && name.toLowerCase().startsWith(`${prefix}/`)) name = name.slice(prefix.length + 1);
      if (upstream.autoLibraryPrefix && name !== "" && !name.includes("/") && !name.includes(":")) name = `library/${name}`;
      return `repository:${name}:${match[2]}`;
    })
    .join(" ");
}
