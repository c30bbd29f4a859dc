/**
 * `src/upstream/`: everything about the registries docxy pulls from — the
 * table of upstreams and the built-ins, routing a request to one, this HTTP
 * client and its redirect policy, body limits, token discovery, and pulling
 * with docxy's own accounts.
 *
 * The one way docxy talks to an upstream registry or token service.
 *
 * - Three separate limits (research/bun-elysia.md §2 "Timeouts"): a timer for
 *   the header phase only, Bun's idle `timeout` for the body (a 10 GiB layer on
 *   a slow link has no total cap), and the client's signal so a disconnect
 *   cancels the upstream request.
 * - `decompress: false`: bytes pass through exactly as the upstream sent them
 *   (with `true` Bun decodes the body but keeps `content-encoding`).
 * - Redirects are followed here, not by fetch, so that the policy is ours:
 *   Docker Hub answers blob GETs with a 307 to its CDN (protocol.md fact 12)
 *   and the client must never see the CDN; `Authorization` and cookies never
 *   cross to another origin; HEAD stays HEAD; and every hop passes the
 *   redirect policy (redirect-policy.ts) before it is fetched.
 * - Every hop (registry, token realm, CDN) goes through the upstream's own
 *   `proxy` when it has one, else through the environment's (HTTPS_PROXY…,
 *   applied by Bun itself); SOCKS goes through a loopback bridge
 *   (socks-bridge.ts) because Bun's fetch cannot speak it. A proxy's failure
 *   is a 502 naming the proxy, never its credentials.
 */
import { RegistryError } from "../oci/errors";
import { envProxyFor, noProxyLists } from "./env-proxy";
import { type OutboundProxy, redactUrls } from "./proxy-url";
import { checkRedirect, type RedirectScope } from "./redirect-policy";
import { BRIDGE_FAILURE, SocksBridge } from "./socks-bridge";

export interface UpstreamTimeouts {
  /** Milliseconds until response headers must have arrived. */
  headerMs: number;
  /** Milliseconds without body bytes before the upstream read is abandoned. */
  idleMs: number;
  maxRedirects: number;
}

export interface UpstreamRequest {
  method: "GET" | "HEAD" | "POST";
  url: string;
  headers: Headers;
  body?: string | URLSearchParams;
  /** Fires when our client goes away. */
  signal?: AbortSignal;
  /** Header-phase budget for this request, when shorter than the default (pings, health). */
  headerTimeoutMs?: number;
  /** false: return a redirect as is (default: follow it). */
  followRedirects?: boolean;
  /** The upstream's `allow_private_redirects` (redirect-policy.ts). */
  allowPrivateRedirects?: boolean;
  /**
   * The operator-configured URL this request stems from, when `url` was
   * named by an upstream (a token realm learnt from its challenge): then
   * `url` itself is judged as a redirect from it.
   */
  trustedUrl?: string;
  /** The upstream's `proxy`; it wins over the environment's for every hop. */
  proxy?: OutboundProxy;
}

export interface UpstreamResponse {
  response: Response;
  /** Headers of the first hop when a redirect was followed (the registry's own, e.g. Docker-Content-Digest). */
  redirectedFrom?: Headers;
}

const REDIRECTS: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);
const CROSS_ORIGIN_SECRETS = ["authorization", "cookie", "proxy-authorization"];

/** Told about every upstream exchange, for metrics. */
export interface UpstreamObserver {
  answered(host: string, method: string, status: number, seconds: number): void;
  failed(host: string, reason: "unreachable" | "timeout"): void;
}

export class UpstreamClient {
  /** One bridge per SOCKS proxy URL, started on first use. */
  private readonly bridges = new Map<string, SocksBridge>();

  constructor(
    private readonly timeouts: UpstreamTimeouts,
    private readonly userAgent: string,
    private readonly observer?: UpstreamObserver,
    /** Where HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY are read (Bun's fetch reads process.env). */
    private readonly env: Record<string, string | undefined> = process.env,
  ) {}

  async send(request: UpstreamRequest): Promise<UpstreamResponse> {
    let url = new URL(request.url);
    let method = request.method;
    const headers = new Headers(request.headers);
    headers.set("user-agent", this.userAgent);
    let redirectedFrom: Headers | undefined;
    const scope: RedirectScope = { trusted: new URL(request.trustedUrl ?? request.url), allowPrivate: request.allowPrivateRedirects ?? false };
    if (request.trustedUrl !== undefined) await checkRedirect(url, { ...scope, proxied: this.proxied(url, request) });

    for (let hop = 0; ; hop++) {
      const response = await this.fetchOnce(url, method, headers, request, hop === 0 ? request.body : undefined);
      const location = response.headers.get("location");
      if (!REDIRECTS.has(response.status) || location === null || request.followRedirects === false) {
        return { response, redirectedFrom };
      }
      await discard(response);
      // Relaying the last 3xx would hand the client a Location it must never see (a CDN, or
      // wherever a hostile upstream points): past the hop limit the upstream is broken.
      if (hop >= this.timeouts.maxRedirects) {
        throw new RegistryError("UNAVAILABLE", `upstream ${url.host} redirected more than ${this.timeouts.maxRedirects} times`, { status: 502 });
      }
      redirectedFrom ??= response.headers;
      const next = URL.parse(location, url.href);
      if (next === null) throw new RegistryError("UNAVAILABLE", `upstream ${url.host} redirected to an invalid location`, { status: 502 });
      await checkRedirect(next, { ...scope, proxied: this.proxied(next, request) });
      if (next.origin !== url.origin) for (const name of CROSS_ORIGIN_SECRETS) headers.delete(name);
      if (response.status === 303 && method !== "HEAD") method = "GET";
      url = next;
    }
  }

  private async fetchOnce(
    url: URL,
    method: string,
    headers: Headers,
    request: UpstreamRequest,
    body: UpstreamRequest["body"],
  ): Promise<Response> {
    const headerTimer = new AbortController();
    const budget = request.headerTimeoutMs ?? this.timeouts.headerMs;
    const timer = setTimeout(() => headerTimer.abort(), budget);
    const signals = request.signal ? [request.signal, headerTimer.signal] : [headerTimer.signal];
    const begin = performance.now();
    const via = request.proxy ?? envProxyFor(url, this.env);
    const bridge = via?.socks ? this.bridgeFor(via) : undefined;
    if (request.proxy !== undefined && noProxyLists(url, this.env)) {
      clearTimeout(timer);
      throw new RegistryError(
        "UNAVAILABLE",
        `NO_PROXY lists ${url.hostname}, and Bun's fetch would then reach it directly instead of through the upstream's proxy ${request.proxy.display}: take it out of NO_PROXY`,
        { status: 502 },
      );
    }
    try {
      // An HTTP(S) proxy from the environment is left to Bun, which applies it per hop itself.
      const proxy = bridge ? await bridge.url() : request.proxy?.url;
      const response = await fetch(url, {
        method,
        headers,
        body,
        redirect: "manual",
        decompress: false,
        timeout: this.timeouts.idleMs,
        signal: AbortSignal.any(signals),
        ...(proxy === undefined ? {} : { proxy }),
      });
      this.observer?.answered(url.host, method, response.status, (performance.now() - begin) / 1000);
      // No registry answers 407: it is the proxy refusing docxy (plain-http hops; CONNECT fails below).
      if (response.status === 407 && via !== undefined) {
        await discard(response);
        throw new RegistryError("UNAVAILABLE", `proxy ${via.display} refused docxy (407): check the user and password in its URL`, { status: 502 });
      }
      if (bridge !== undefined && response.headers.has(BRIDGE_FAILURE)) {
        await discard(response);
        throw new RegistryError("UNAVAILABLE", unreachable(url, via, bridge), { status: 502 });
      }
      return response;
    } catch (error) {
      if (error instanceof RegistryError) throw error;
      if (request.signal?.aborted) throw error; // our client left; nobody to answer
      this.observer?.failed(url.host, headerTimer.signal.aborted ? "timeout" : "unreachable");
      if (headerTimer.signal.aborted) {
        throw new RegistryError("UNAVAILABLE", `upstream ${url.host} did not answer within ${budget / 1000}s${through(via)}`, {
          status: 504,
          cause: error,
        });
      }
      throw new RegistryError("UNAVAILABLE", unreachable(url, via, bridge, error), {
        status: 502,
        cause: error,
      });
    } finally {
      clearTimeout(timer);
    }
  }

  /** Whether `url` is fetched through a proxy (the upstream's, or the environment's unless NO_PROXY lists it). */
  private proxied(url: URL, request: UpstreamRequest): boolean {
    return request.proxy !== undefined || envProxyFor(url, this.env) !== undefined;
  }

  private bridgeFor(proxy: OutboundProxy): SocksBridge {
    let bridge = this.bridges.get(proxy.url);
    if (bridge === undefined) this.bridges.set(proxy.url, (bridge = new SocksBridge(proxy)));
    return bridge;
  }
}

/** The SOCKS bridge's reason names the proxy itself; anything else is said to be through it. */
function unreachable(url: URL, via: OutboundProxy | undefined, bridge: SocksBridge | undefined, error?: unknown): string {
  const failure = bridge?.failureFor(url.hostname, defaultPort(url));
  if (failure !== undefined) return `upstream ${url.host} is unreachable: ${failure}`;
  return `upstream ${url.host} is unreachable${through(via)}: ${redactUrls(describe(error))}`;
}

function through(via: OutboundProxy | undefined): string {
  return via === undefined ? "" : ` through proxy ${via.display}`;
}

function defaultPort(url: URL): number {
  return Number(url.port || (url.protocol === "https:" ? 443 : 80));
}

/** Frees the connection of a response whose body we do not want (an unread body pins its socket). */
export async function discard(response: Response): Promise<void> {
  try {
    await response.body?.cancel();
  } catch {
    // already aborted or consumed: nothing left to free
  }
}

function describe(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" ? code : ((error as Error).message ?? String(error));
}
