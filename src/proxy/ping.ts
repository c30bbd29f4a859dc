/**
 * `GET|HEAD /v2/`: the version check through which Docker and
 * containers/image discover auth (they only learn the challenge here,
 * protocol.md §2.5). Forwarded with the client's credentials so that
 * `docker login` really checks the token it obtained; a 401 gets our realm.
 *
 * It must answer promptly even when the upstream hangs, so it has the short
 * ping budget. When the upstream is in trouble — unreachable, too slow, or
 * answering anything but 2xx or 401 (a 429 storm, a 5xx outage, a proxy's
 * 403 page) — we answer from what we know: anonymous clients get the
 * challenge (the realm is ours anyway), clients presenting credentials get
 * 200. Every client stops at a failed version check before it asks for a
 * manifest (and Docker with registry-mirrors then goes to Docker Hub
 * itself), so relaying the trouble here would make the cache unreachable;
 * the requests that follow get the upstream's real error where the cache
 * cannot answer.
 */
import { proxyChallenge } from "../auth/challenge-rewrite";
import { RegistryError } from "../oci/errors";
import { registryErrorResponse, versionCheckResponse } from "../oci/responses";
import type { AuthDiscovery } from "../upstream/auth-discovery";
import { discard, type UpstreamClient } from "../upstream/client";
import type { Upstream } from "../upstream/table";

export interface PingRequest {
  method: "GET" | "HEAD";
  authorization: string | null;
  /**
   * docxy pulls for this client with its own upstream account: no challenge,
   * so the client does not go looking for a token it does not need.
   */
  pullsAsProxy: boolean;
  upstream: Upstream;
  origin: string;
  signal?: AbortSignal;
}

export class Ping {
  constructor(
    private readonly client: UpstreamClient,
    private readonly discovery: AuthDiscovery,
    private readonly timeoutMs: number,
  ) {}

  async ping(request: PingRequest): Promise<Response> {
    if (request.pullsAsProxy) return versionCheckResponse(request.method);
    const headers = new Headers();
    if (request.authorization) headers.set("authorization", request.authorization);
    let status: number | undefined;
    let challenge: string | null = null;
    try {
      const { response } = await this.client.send({
        method: request.method,
        url: `${request.upstream.url}/v2/`,
        headers,
        signal: request.signal,
        headerTimeoutMs: this.timeoutMs,
        allowPrivateRedirects: request.upstream.allowPrivateRedirects,
        proxy: request.upstream.proxy,
      });
      await discard(response);
      status = response.status;
      if (status === 401) {
        challenge = response.headers.get("www-authenticate");
        this.discovery.learn(request.upstream, challenge);
      }
    } catch (error) {
      if (!(error instanceof RegistryError)) throw error;
      status = undefined;
    }
    if (status === undefined || (status >= 300 && status !== 401)) status = request.authorization ? 200 : 401;

    if (status !== 401) return versionCheckResponse(request.method);
    const service = this.discovery.known(request.upstream)?.service;
    const refusal = new RegistryError("UNAUTHORIZED", "authentication required", {
      headers: {
        "www-authenticate": proxyChallenge(request.origin, request.upstream, challenge, service),
        // The realm depends on how this client reached us: never let a shared cache reuse it.
        "cache-control": "no-store",
      },
    });
    return registryErrorResponse(refusal, request.method);
  }
}
