/**
 * Where an upstream's token service lives. Configured values win; otherwise
 * they are learnt from the upstream's own Bearer challenge (on `/v2/`, or on
 * any 401 we relay) and remembered for the life of the process.
 */
import { RegistryError } from "../oci/errors";
import { parseChallenge } from "./challenge";
import { discard, type UpstreamClient } from "./client";
import type { Upstream } from "./table";

export interface TokenService {
  realm: string;
  service: string;
  /**
   * The upstream URL whose challenge named the realm; unset when the
   * operator configured it. A named realm is judged like a redirect from
   * there (redirect-policy.ts): a hostile upstream's
   * `realm="http://169.254.169.254/..."` must not make docxy fetch and relay it.
   */
  namedBy?: string;
}

export class AuthDiscovery {
  private readonly learnt = new Map<string, TokenService>();

  constructor(
    private readonly client: UpstreamClient,
    private readonly pingTimeoutMs: number,
  ) {}

  /** The token service if already known, without touching the network. */
  known(upstream: Upstream): TokenService | undefined {
    if (upstream.authRealm && upstream.authService) return { realm: upstream.authRealm, service: upstream.authService };
    return this.learnt.get(upstream.name);
  }

  /** Remembers the token service named by an upstream challenge header. */
  learn(upstream: Upstream, header: string | null): void {
    if (!header || this.known(upstream)) return;
    const challenge = parseChallenge(header);
    const realm = challenge?.params.realm;
    if (challenge?.scheme.toLowerCase() !== "bearer" || !realm || !URL.canParse(realm)) return;
    this.learnt.set(upstream.name, {
      realm: upstream.authRealm ?? realm,
      service: upstream.authService ?? challenge.params.service ?? "",
      namedBy: upstream.authRealm ? undefined : upstream.url,
    });
  }

  async tokenService(upstream: Upstream, signal?: AbortSignal): Promise<TokenService> {
    const known = this.known(upstream);
    if (known) return known;
    const { response } = await this.client.send({
      method: "GET",
      url: `${upstream.url}/v2/`,
      headers: new Headers(),
      signal,
      headerTimeoutMs: this.pingTimeoutMs,
      allowPrivateRedirects: upstream.allowPrivateRedirects,
      proxy: upstream.proxy,
    });
    await discard(response);
    this.learn(upstream, response.headers.get("www-authenticate"));
    const learnt = this.known(upstream);
    if (!learnt) {
      throw new RegistryError("UNSUPPORTED", `upstream ${upstream.name} does not use token authentication`, {
        status: 404,
      });
    }
    return learnt;
  }
}
