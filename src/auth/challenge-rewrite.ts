/**
 * Every 401 we relay gets a challenge whose realm is our own token endpoint.
 *
 * containerd never pings `/v2/`; it learns where to get a token from the 401
 * on its first manifest HEAD (protocol.md §2.4). If that challenge still named
 * auth.docker.io, a client that cannot reach Docker Hub would fail there
 * (Wharf ≤0.5.21, ciiiii/cloudflare-docker-proxy#79). `scope` and `error`
 * are kept: clients use `scope` to ask for the right token and
 * `insufficient_scope` to retry.
 */
import { formatBearerChallenge, parseChallenge } from "../upstream/challenge";
import type { Upstream } from "../upstream/table";

export function tokenRealm(origin: string, upstream: Upstream): string {
  return `${origin}/auth/${encodeURIComponent(upstream.name)}/token`;
}

/**
 * Our challenge for `upstream`, carrying over `scope` and `error` from the
 * upstream's header (if any). `service` is the upstream's token service, which
 * our token endpoint sends upstream regardless of what the client echoes.
 * `prefix`: a client pulling `docxy/ghcr.io/x/y` calls the repository
 * `ghcr.io/x/y`, so the scope names it that way too (the token endpoint
 * takes the prefix off again).
 */
export function proxyChallenge(origin: string, upstream: Upstream, upstreamHeader: string | null, service?: string, prefix?: string): string {
  const upstreamParams = upstreamHeader ? (parseChallenge(upstreamHeader)?.params ?? {}) : {};
  return formatBearerChallenge({
    realm: tokenRealm(origin, upstream),
    service: service ?? upstream.authService ?? upstreamParams.service,
    scope: prefix && upstreamParams.scope ? withPrefix(upstreamParams.scope, prefix) : upstreamParams.scope,
    error: upstreamParams.error,
  });
}

function withPrefix(scopes: string, prefix: string): string {
  return scopes.replace(/(^|\s)repository:/g, `$1repository:${prefix}/`);
}
