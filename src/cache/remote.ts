/**
 * The remote the cache fills from and relays: what it needs of the upstream,
 * declared here so the cache depends on this and not on who implements it.
 * Today the pass-through (proxy/pass-through.ts) implements it, handed over
 * by the composition root. In a fleet (issue 16) it stays the same: nodes
 * share the store and the coordination, and each still asks the upstream
 * through its own pass-through.
 *
 * Where a blob miss goes: cache front → blob cache → coordination (claim the
 * fill) → this remote (one `fetch` of the whole blob).
 *
 * Types only. The in-process cache tests count every call made through it
 * (tests/support/cache/in-process.ts; tests/cache/blob-cache.test.ts,
 * cache-front.test.ts).
 */
import type { PullRequest } from "../proxy/pull-request";
import type { UpstreamResponse } from "../upstream/client";

/**
 * How a fetch differs from the client's request: the method or reference,
 * no Range (a fill wants the whole blob), or stopping at a redirect (an
 * access check needs only the registry's answer, not the CDN's bytes).
 */
export interface FetchOverride {
  method?: "GET" | "HEAD";
  reference?: string;
  withoutRange?: boolean;
  followRedirects?: boolean;
}

export interface Remote {
  /** The request upstream with the client's credentials, Accept, Range and conditionals, changed by `override`. */
  fetch(request: PullRequest, override?: FetchOverride): Promise<UpstreamResponse>;
  /** An upstream answer already fetched, as the client must see it (header hygiene, our challenge, capped bodies). */
  relay(request: PullRequest, answer: UpstreamResponse): Promise<Response>;
  /** The request passed straight through: only the cache front (cache-front.ts) decides to. */
  forward(request: PullRequest): Promise<Response>;
  /** The repository name as the upstream knows it (`alpine` → `library/alpine` on Docker Hub). */
  upstreamName(request: PullRequest): string;
}
