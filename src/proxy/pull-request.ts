/**
 * What a read of the registry API is, as the HTTP layer hands it on: the
 * shape both answerers share, the cache front (cache/cache-front.ts) and the
 * pass-through (proxy/pass-through.ts). Types only, so that the cache can
 * take a request without depending on the pass-through's implementation.
 * Exercised through its users: tests/cache/cache-front.test.ts, tests/proxy/pass-through.test.ts.
 */
import type { Route } from "../upstream/routing";
import type { PullPath } from "../oci/paths";

/**
 * Whose credentials go upstream: the client's own (forwarded as sent, and an
 * upstream 401 relayed so the client can log in), or docxy's (a configured
 * account, or anonymous), obtained by docxy itself.
 */
export type UpstreamIdentity = "client" | "proxy";

export interface PullRequest {
  /** The path as the upstream knows it (routing prefix already taken off). */
  path: PullPath;
  identity: UpstreamIdentity;
  method: "GET" | "HEAD";
  query: URLSearchParams;
  headers: Headers;
  route: Route;
  /** Our public origin for this request (the realm of rewritten challenges). */
  origin: string;
  signal?: AbortSignal;
  /** The client's address, when the request came over the network (the cache's per-client fill limit). */
  client?: string;
  /** Where the HTTP layer learns what served this request, for the access log (the route's notes). */
  trace?: PullTrace;
}

/** Written by the remote as it asks upstream. */
export interface PullTrace {
  /** URL of the origin that last answered for this request: the upstream's, or a fallback's (upstream/fallbacks.ts). */
  source?: string;
}

/** Answers reads of the registry API: the cache front, or the bare pass-through when the cache is off. */
export interface RegistryReads {
  answer(request: PullRequest): Promise<Response>;
}
