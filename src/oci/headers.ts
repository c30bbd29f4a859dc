/**
 * Header hygiene for a proxy. Hop-by-hop headers are defined per connection
 * (RFC 9110 §7.6.1) and must not be forwarded either way; forwarding
 * `transfer-encoding` also makes Elysia re-stream a body through TextDecoder
 * and corrupt binary data (research/bun-elysia.md pitfall 2).
 */
const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
];

/** Returns a copy of `headers` without hop-by-hop headers (and those named in Connection). */
export function withoutHopByHop(headers: Headers): Headers {
  const out = new Headers(headers);
  for (const named of (headers.get("connection") ?? "").split(",")) {
    const name = named.trim();
    if (name) out.delete(name);
  }
  for (const name of HOP_BY_HOP) out.delete(name);
  return out;
}

/**
 * Request headers a pull needs upstream: credentials, content negotiation and
 * the conditional/range headers Docker uses to resume layers (moby
 * http_reader.go; Wharf added them in v0.5.20 for exactly this).
 */
export const FORWARDED_REQUEST_HEADERS = [
  "authorization",
  "accept",
  "range",
  "if-range",
  "if-match",
  "if-none-match",
  "if-modified-since",
  "if-unmodified-since",
];

export const DOCKER_CONTENT_DIGEST = "docker-content-digest";
export const API_VERSION_HEADER = "docker-distribution-api-version";
export const API_VERSION = "registry/2.0";
