/**
 * `/auth/token` and `/auth/<name>/token`: the client's token request, sent on
 * to the upstream's token service with its `Authorization` (the Basic
 * credentials of `docker login`) untouched, and the answer relayed as is.
 * Credentials and tokens pass through; they are never logged.
 */
import { RegistryError } from "../oci/errors";
import { withoutHopByHop } from "../oci/headers";
import type { AuthDiscovery } from "../upstream/auth-discovery";
import type { UpstreamClient } from "../upstream/client";
import type { Upstream } from "../upstream/table";
import { upstreamTokenForm, upstreamTokenQuery } from "./token-request";

export interface TokenExchange {
  upstream: Upstream;
  /** Registry prefix on the client's repository names, to take off (see upstream/routing.ts). */
  prefix?: string;
  /** GET carries the parameters in `query`; POST in the url-encoded `form`. */
  query: URLSearchParams;
  form?: URLSearchParams;
  authorization: string | null;
  signal?: AbortSignal;
}

/** The token handed out while the upstream's token service is unreachable. */
const OFFLINE_TOKEN = "docxy-offline";

/** Upstream headers a token response must not carry to our client. */
const DROPPED = ["set-cookie", "www-authenticate", "strict-transport-security", "alt-svc"];

export class TokenProxy {
  constructor(
    private readonly client: UpstreamClient,
    private readonly discovery: AuthDiscovery,
  ) {}

  /**
   * While the upstream's token service is down, clients still get a token —
   * one that is worth nothing upstream — so they go on to ask docxy for
   * content, and the cache serves what it may (public images it holds).
   * Without this, an outage of the token service would make the cache useless
   * to every client that authenticates first (all of them).
   */
  async exchange(request: TokenExchange): Promise<Response> {
    try {
      const response = await this.forward(request);
      if (response.status < 500) return response;
      await response.body?.cancel().catch(() => undefined);
    } catch (error) {
      if (!(error instanceof RegistryError) || error.ociCode !== "UNAVAILABLE") throw error;
    }
    const issuedAt = new Date().toISOString();
    return Response.json({ token: OFFLINE_TOKEN, access_token: OFFLINE_TOKEN, expires_in: 60, issued_at: issuedAt });
  }

  private async forward(request: TokenExchange): Promise<Response> {
    const { realm, service, namedBy } = await this.discovery.tokenService(request.upstream, request.signal);
    const headers = new Headers({ accept: "application/json" });
    if (request.authorization) headers.set("authorization", request.authorization);

    const url = new URL(realm);
    let body: URLSearchParams | undefined;
    if (request.form) {
      body = upstreamTokenForm(request.form, service, request.upstream, request.prefix);
      headers.set("content-type", "application/x-www-form-urlencoded");
    } else {
      const query = upstreamTokenQuery(request.query, service, request.upstream, request.prefix);
      // Keep any parameters the realm URL itself carries, then ours in order.
      for (const [key, value] of query) url.searchParams.append(key, value);
    }

    const { response } = await this.client.send({
      method: body ? "POST" : "GET",
      url: url.href,
      headers,
      body,
      signal: request.signal,
      trustedUrl: namedBy,
      allowPrivateRedirects: request.upstream.allowPrivateRedirects,
    });
    const out = withoutHopByHop(response.headers);
    for (const name of DROPPED) out.delete(name);
    return new Response(response.body, { status: response.status, headers: out });
  }
}
