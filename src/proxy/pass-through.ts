/**
 * The pull side of the registry API, passed through to one upstream:
 * manifests, blobs, tags/list and referrers. It is the cache's remote
 * (cache/remote.ts), and with the cache off it answers every read itself.
 * Tests: tests/proxy/pass-through.limits.test.ts in process, and
 * tests/integration/proxy/ through the binary against the real registry.
 *
 * Rules that real clients depend on (protocol.md, docxy.md §6.1):
 * - HEAD stays HEAD upstream: Docker Hub does not count HEADs against the pull
 *   quota, and Docker resolves every tag with one.
 * - Exact `Content-Length` on GET and HEAD whenever the upstream gives one:
 *   Docker 29 fails on a HEAD with length 0, and progress bars need it on GET.
 *   A blob HEAD with no length is completed with a one-byte Range probe.
 * - Every 401 carries our own challenge (see auth/challenge-rewrite.ts).
 * - The CDN a blob redirects to is fetched by us; the client never sees it.
 * - Every body but a blob's is capped as it is read (upstream/body-limit.ts),
 *   whichever hop it came from: manifests at 4 MiB, tag lists and referrers
 *   at 16 MiB, error bodies at 64 KiB (past which our own error JSON with the
 *   upstream's status stands in).
 */
import { proxyChallenge } from "../auth/challenge-rewrite";
import { RegistryError, type ErrorCode } from "../oci/errors";
import { errorBody } from "../oci/responses";
import { API_VERSION, API_VERSION_HEADER, DOCKER_CONTENT_DIGEST, FORWARDED_REQUEST_HEADERS, withoutHopByHop } from "../oci/headers";
import { withLibraryPrefix } from "../oci/reference";
import type { AuthDiscovery } from "../upstream/auth-discovery";
import { announcedLength, cappedBody, ERROR_LIMIT, LISTING_LIMIT, MANIFEST_LIMIT, type BodyLimit } from "../upstream/body-limit";
import { discard, type UpstreamClient, type UpstreamResponse } from "../upstream/client";
import { Fallbacks } from "../upstream/fallbacks";
import type { Route } from "../upstream/routing";
import type { Upstream } from "../upstream/table";
import type { UpstreamAuth } from "../upstream/upstream-auth";
import type { FetchOverride, Remote } from "../cache/remote";
import type { PullPath } from "../oci/paths";
import type { PullRequest, UpstreamIdentity } from "./pull-request";

/**
 * Upstream headers that describe the upstream's or CDN's own connection or
 * site, not the content: HSTS and Alt-Svc would pin or redirect clients of
 * *our* host, and CDN cookies are not theirs.
 */
const SITE_HEADERS = ["set-cookie", "strict-transport-security", "alt-svc"];

/** Query parameters meant for the proxy itself: containerd's `ns` (dist-spec "Registry Proxying"). */
const PROXY_PARAMETERS = ["ns"];

export class PassThrough implements Remote {
  constructor(
    private readonly client: UpstreamClient,
    private readonly discovery: AuthDiscovery,
    private readonly upstreamAuth: UpstreamAuth,
    private readonly fallbacks = new Fallbacks(),
  ) {}

  /** Pure pass-through: the request upstream, the answer back. */
  async forward(request: PullRequest): Promise<Response> {
    const result = await this.fetch(request);
    const response = await this.relay(request, result);
    if (request.method === "HEAD" && request.path.kind === "blobs" && response.ok && !hasLength(response)) {
      const length = await this.probeLength(request, request.signal);
      if (length !== undefined) response.headers.set("content-length", String(length));
    }
    return response;
  }

  /** The repository name as the upstream knows it (`alpine` → `library/alpine` on Docker Hub). */
  upstreamName(request: PullRequest): string {
    const { upstream } = request.route;
    return upstream.autoLibraryPrefix ? withLibraryPrefix(request.path.name) : request.path.name;
  }

  /**
   * Sends the request upstream with the client's credentials, Accept, Range
   * and conditionals. `override` changes the method or reference, drops Range
   * (a cache fill wants the whole blob) or stops at a redirect (an access
   * check needs only the registry's answer, not the CDN's bytes). When the
   * upstream is in trouble its fallbacks are asked in turn (upstream/fallbacks.ts),
   * always as docxy: the client's credentials are the upstream's, never theirs.
   */
  async fetch(request: PullRequest, override: FetchOverride = {}): Promise<UpstreamResponse> {
    const { upstream } = request.route;
    const { result, source } = await this.fallbacks.fetch(
      upstream,
      (origin) => this.fetchFrom(origin, origin === upstream ? request.identity : "proxy", request, override),
      request.signal,
    );
    if (request.trace) request.trace.source = source.url;
    return result;
  }

  private async fetchFrom(origin: Upstream, identity: UpstreamIdentity, request: PullRequest, override: FetchOverride): Promise<UpstreamResponse> {
    const { path } = request;
    const reference = override.reference ?? path.reference;
    const tail = path.kind === "tags" ? "tags/list" : `${path.kind}/${reference}`;
    const url = new URL(`${origin.url}/v2/${this.upstreamName(request)}/${tail}`);
    for (const [key, value] of request.query) if (!PROXY_PARAMETERS.includes(key)) url.searchParams.append(key, value);

    const headers = new Headers();
    for (const header of FORWARDED_REQUEST_HEADERS) {
      const value = request.headers.get(header);
      if (value !== null) headers.set(header, value);
    }
    if (override.withoutRange) for (const name of ["range", "if-range"]) headers.delete(name);
    const send = () =>
      this.client.send({
        method: override.method ?? request.method,
        url: url.href,
        headers,
        signal: request.signal,
        followRedirects: override.followRedirects,
        allowPrivateRedirects: origin.allowPrivateRedirects,
        proxy: origin.proxy,
      });
    if (identity === "client") return send();

    const repository = this.upstreamName(request);
    for (let attempt = 0; ; attempt++) {
      const { header, account } = await this.upstreamAuth.authorize(origin, repository, request.signal);
      if (header) headers.set("authorization", header);
      else headers.delete("authorization");
      const result = await send();
      account?.observe(result.redirectedFrom ?? result.response.headers);
      if (result.response.status !== 401 || attempt > 0) return result;
      // A cached token the upstream no longer accepts: drop it and try once with a fresh one.
      await discard(result.response);
      await this.upstreamAuth.invalidate(origin, repository, account);
    }
  }

  /** The upstream's answer as our client must see it: header hygiene, our challenge, relative links, capped bodies. */
  async relay(request: PullRequest, { response, redirectedFrom }: UpstreamResponse): Promise<Response> {
    const headers = withoutHopByHop(response.headers);
    // A length beside Transfer-Encoding does not frame the body (RFC 9112 §6.3): never pass it on.
    // (A HEAD's length is metadata, and its body is null.)
    if (response.body !== null && announcedLength(response) === undefined) headers.delete("content-length");
    for (const name of SITE_HEADERS) headers.delete(name);
    headers.set(API_VERSION_HEADER, API_VERSION);

    const { upstream, prefix, via } = request.route;
    if (response.status === 401) {
      const upstreamChallenge = response.headers.get("www-authenticate");
      this.discovery.learn(upstream, upstreamChallenge);
      const service = this.discovery.known(upstream)?.service;
      headers.set("www-authenticate", proxyChallenge(request.origin, upstream, upstreamChallenge, service, prefix));
      // The realm may depend on how this client reached us: never let a shared cache reuse it.
      headers.set("cache-control", "no-store");
    }
    // dist-spec main, "Registry Proxying": a proxy that used `ns` echoes it.
    if (via === "ns") headers.set("oci-namespace", upstream.registry);
    if (response.ok && !headers.has(DOCKER_CONTENT_DIGEST)) {
      // A CDN does not send the registry's digest header; the registry's 307 may
      // have, and for content fetched by digest the digest is the reference.
      const digest = redirectedFrom?.get(DOCKER_CONTENT_DIGEST) ?? digestReference(request.path);
      if (digest) headers.set(DOCKER_CONTENT_DIGEST, digest);
    }
    const link = headers.get("link");
    if (link) headers.set("link", relativeLinks(link, prefix));

    if (response.status >= 500) return upstreamFailure(request, response, headers);
    if (request.method === "HEAD") {
      void discard(response);
      return new Response(null, { status: response.status, headers });
    }
    const json = (response.headers.get("content-type") ?? "").includes("json");
    if (response.status >= 400 && (response.body === null || !json)) return withErrorBody(request, response, headers);
    const limit = response.status >= 400 ? ERROR_LIMIT : LIMITS[request.path.kind];
    if (!limit || response.body === null) return new Response(response.body, { status: response.status, headers });
    let body;
    try {
      body = await cappedBody(response, limit, upstream.name, headers);
    } catch (error) {
      // An oversized error body is replaced, not refused: the client still needs its 401 or 404.
      if (error instanceof RegistryError && limit === ERROR_LIMIT) return withErrorBody(request, response, headers);
      throw error;
    }
    return new Response(body, { status: response.status, headers });
  }

  /**
   * Some upstreams answer a blob HEAD without a length; Docker then records
   * size 0 and fails (Wharf v0.5.21). One byte by Range tells the total.
   */
  private async probeLength(request: PullRequest, signal?: AbortSignal): Promise<number | undefined> {
    const headers = new Headers(request.headers);
    headers.set("range", "bytes=0-0");
    const { response } = await this.fetch({ ...request, headers, signal }, { method: "GET" });
    await discard(response);
    const total = /\/(\d+)\s*$/.exec(response.headers.get("content-range") ?? "")?.[1];
    const length = Number(total ?? (response.status === 200 ? response.headers.get("content-length") : undefined));
    return Number.isSafeInteger(length) && length > 0 ? length : undefined;
  }
}

/** Blobs are streamed and verified by digest, never held: no cap. */
const LIMITS: Record<PullPath["kind"], BodyLimit | undefined> = {
  manifests: MANIFEST_LIMIT,
  tags: LISTING_LIMIT,
  referrers: LISTING_LIMIT,
  blobs: undefined,
};

function hasLength(response: Response): boolean {
  const length = response.headers.get("content-length");
  return length !== null && length !== "0";
}

function digestReference(path: PullPath): string | undefined {
  return path.kind !== "tags" && path.reference?.includes(":") ? path.reference : undefined;
}

/**
 * Pagination links (`tags/list`, `referrers`) point at the upstream, possibly
 * by absolute URL. Clients follow them against the host they talk to, so we
 * keep only path and query (RFC 8288 allows relative references), with the
 * registry prefix put back for clients that route by it.
 */
export function relativeLinks(header: string, prefix?: string): string {
  return header.replace(/<([^>]*)>/g, (_, target: string) => {
    const url = URL.parse(target, "http://relative.invalid");
    if (!url) return `<${target}>`;
    const path = prefix ? url.pathname.replace(/^\/v2\//, `/v2/${prefix}/`) : url.pathname;
    return `<${path}${url.search}>`;
  });
}

/**
 * An upstream's own 5xx becomes a 502 UNAVAILABLE registry error: the client
 * learns the upstream failed (clients print `code: message`), and a 500
 * from docxy then always means docxy itself failed. 502-504 keep their status.
 */
function upstreamFailure(request: PullRequest, response: Response, headers: Headers): Response {
  const status = [502, 503, 504].includes(response.status) ? response.status : 502;
  return registryError(request, response, headers, status, "UNAVAILABLE");
}

const CODES: Record<number, ErrorCode> = { 401: "UNAUTHORIZED", 403: "DENIED", 429: "TOOMANYREQUESTS" };

/**
 * An upstream 4xx without a registry-JSON body — Docker Hub's abuse limit is
 * a bare 429, some answer HTML, and an answer learnt from a HEAD has none — as
 * the registry error a GET client expects (it prints `code: message`).
 */
function withErrorBody(request: PullRequest, response: Response, headers: Headers): Response {
  const unknown = request.path.kind === "blobs" ? "BLOB_UNKNOWN" : request.path.kind === "manifests" ? "MANIFEST_UNKNOWN" : "NAME_UNKNOWN";
  const code = response.status === 404 ? unknown : (CODES[response.status] ?? "UNKNOWN");
  return registryError(request, response, headers, response.status, code);
}

function registryError(request: PullRequest, response: Response, headers: Headers, status: number, code: ErrorCode): Response {
  void discard(response);
  const body = errorBody(code, `upstream ${request.route.upstream.name} answered ${response.status}`);
  headers.set("content-type", "application/json; charset=utf-8");
  headers.set("content-length", String(Buffer.byteLength(body)));
  headers.delete("content-encoding");
  return new Response(request.method === "HEAD" ? null : body, { status, headers });
}
