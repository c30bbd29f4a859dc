/**
 * `/auth/token` and `/auth/<name>/token`: the client's token request, sent on
 * to the upstream's token service with its `Authorization` (the Basic
 * credentials of `docker login`) untouched, and the answer relayed as is,
 * within a cap (upstream/body-limit.ts): a token service that sends more than
 * any token counts as failed. Credentials and tokens pass through; they are
 * never logged.
 */
import { RegistryError } from "../oci/errors";
import { withoutHopByHop } from "../oci/headers";
import { registryErrorResponse } from "../oci/responses";
import type { AuthDiscovery } from "../upstream/auth-discovery";
import { cappedBody, ERROR_LIMIT, readCapped, TOKEN_LIMIT } from "../upstream/body-limit";
import { discard, type UpstreamClient } from "../upstream/client";
import type { Upstream } from "../upstream/table";
import type { CredentialMemory } from "./credential-memory";
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

/** Upstream headers a token response must not carry to our client. */
const DROPPED = ["set-cookie", "www-authenticate", "strict-transport-security", "alt-svc"];

export class TokenProxy {
  constructor(
    private readonly client: UpstreamClient,
    private readonly discovery: AuthDiscovery,
    private readonly credentials: CredentialMemory,
  ) {}

  /**
   * While the upstream's token service is down (unreachable, too slow,
   * closing the connection, answering 5xx or 429), clients still get a token —
   * one that is worth nothing upstream — so they go on to ask docxy for
   * content, and the cache serves what it may (public images it holds).
   * Without this, an outage of the token service would make the cache useless
   * to every client that authenticates first (all of them). A client that
   * presents credentials gets an offline token naming them
   * (credential-memory.ts), so the private content those credentials read
   * before stays readable to it, and to nobody else.
   */
  async exchange(request: TokenExchange): Promise<Response> {
    const credentials = this.credentials.credentialsOf(request.authorization, request.form);
    try {
      return await this.forward(request, credentials);
    } catch (error) {
      if (!(error instanceof RegistryError) || error.ociCode !== "UNAVAILABLE") throw error;
    }
    const token = this.credentials.offlineToken(credentials);
    return Response.json({ token, access_token: token, expires_in: 60, issued_at: new Date().toISOString() });
  }

  private async forward(request: TokenExchange, credentials: string | undefined): Promise<Response> {
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
      proxy: request.upstream.proxy,
    });
    const out = withoutHopByHop(response.headers);
    for (const name of DROPPED) out.delete(name);
    if (response.status >= 500 || response.status === 429) {
      // A 429 storm is an outage too (Docker Hub limits its token service per address):
      // it must not stop pulls of what the cache holds.
      await discard(response);
      throw new RegistryError("UNAVAILABLE", `the token service of ${request.upstream.name} answered ${response.status}`, { status: 502 });
    }
    if (response.status < 400) {
      const bytes = await readCapped(response, TOKEN_LIMIT, request.upstream.name);
      if (credentials) this.remember(credentials, bytes);
      out.set("content-length", String(bytes.length));
      return new Response(bytes, { status: response.status, headers: out });
    }
    try {
      return new Response(await cappedBody(response, ERROR_LIMIT, request.upstream.name, out), { status: response.status, headers: out });
    } catch (error) {
      if (!(error instanceof RegistryError)) throw error;
      // An oversized refusal is still a refusal: `docker login` must fail, not get an offline token.
      const code = response.status === 401 ? "UNAUTHORIZED" : "DENIED";
      const refusal = new RegistryError(code, `the token service of ${request.upstream.name} answered ${response.status}`, { status: response.status });
      return registryErrorResponse(refusal, body ? "POST" : "GET");
    }
  }

  /** Whose the issued token is (its JSON: `token` or `access_token`, `expires_in`), for credential-memory.ts. */
  private remember(credentials: string, bytes: Uint8Array): void {
    try {
      const body = JSON.parse(new TextDecoder().decode(bytes)) as { token?: unknown; access_token?: unknown; expires_in?: unknown };
      const token = typeof body.token === "string" ? body.token : body.access_token;
      if (typeof token === "string" && token !== "") this.credentials.issued(credentials, token, typeof body.expires_in === "number" ? body.expires_in : 60);
    } catch {
      // not JSON: relayed as is, nothing to remember
    }
  }
}
