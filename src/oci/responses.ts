/**
 * The one shape of the answers docxy makes itself, on every port: blob and
 * manifest heads (exact lengths, `Range` → 206 or 416, digest, API version,
 * `X-Cache`), `OCI-Namespace`, the version check, and registry error JSON.
 * Answers relayed from an upstream keep the upstream's shape; these are the
 * ones docxy is the author of.
 */
import type { RegistryError } from "./errors";
import { API_VERSION, API_VERSION_HEADER, DOCKER_CONTENT_DIGEST } from "./headers";

export type BlobHead =
  | { status: 416; headers: Headers }
  | { status: 200 | 206; headers: Headers; start: number; end: number };

/**
 * The status and headers of a blob answer. HEAD gets the length of what a
 * GET would send; only GET honours `Range`. `cache` is the `X-Cache` value:
 * HIT, MISS (fetched now), COALESCED (joined a fill in progress)…
 */
export function blobHead(digest: string, size: number, method: string, rangeHeader: string | null, cache: string): BlobHead {
  const headers = new Headers({
    "content-type": "application/octet-stream",
    "accept-ranges": "bytes",
    [DOCKER_CONTENT_DIGEST]: digest,
    [API_VERSION_HEADER]: API_VERSION,
    etag: `"${digest}"`,
    "x-cache": cache,
  });
  const range = method === "GET" ? parseRange(rangeHeader, size) : undefined;
  if (range === "unsatisfiable") {
    headers.set("content-range", `bytes */${size}`);
    return { status: 416, headers };
  }
  const [start, end] = range ?? [0, size - 1];
  headers.set("content-length", String(end - start + 1));
  if (range) headers.set("content-range", `bytes ${start}-${end}/${size}`);
  return { status: range ? 206 : 200, headers, start, end };
}

export interface ManifestFacts {
  digest: string;
  mediaType: string;
  size: number;
}

/** The headers of a manifest docxy holds; no Range (clients never ask for part of a manifest). */
export function manifestHeaders(manifest: ManifestFacts, cache: string): Headers {
  return new Headers({
    "content-type": manifest.mediaType,
    "content-length": String(manifest.size),
    [DOCKER_CONTENT_DIGEST]: manifest.digest,
    [API_VERSION_HEADER]: API_VERSION,
    etag: `"${manifest.digest}"`,
    "x-cache": cache,
  });
}

/**
 * `OCI-Namespace`: a client that named the registry with `?ns=` (containerd's
 * mirror mode) is told which registry answered (dist-spec "Registry
 * Proxying"). Routed any other way, the client never asked.
 */
export function withNamespace(headers: Headers, route: { via: string; upstream: { registry: string } }): Headers {
  if (route.via === "ns") headers.set("oci-namespace", route.upstream.registry);
  return headers;
}

export type ByteRange = [start: number, end: number];

/**
 * `Range: bytes=…` for a blob of `size` bytes (RFC 9110 §14). One range only:
 * registry clients never ask for several, and a multipart answer would break
 * them. undefined: serve the whole blob (no header, or one we do not
 * understand, which RFC 9110 lets us ignore).
 */
export function parseRange(header: string | null, size: number): ByteRange | "unsatisfiable" | undefined {
  if (header === null) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === "" && match[2] === "")) return undefined;
  if (match[1] === "") {
    const suffix = Number(match[2]);
    if (suffix === 0) return "unsatisfiable";
    return [Math.max(0, size - suffix), size - 1];
  }
  const start = Number(match[1]);
  const end = match[2] === "" ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (start >= size || end < start) return "unsatisfiable";
  return [start, end];
}

/**
 * The answer to a successful version check (`GET|HEAD /v2/`): an empty JSON
 * object, with the API version Docker looks for to tell a v2 registry.
 */
export function versionCheckResponse(method: string): Response {
  return jsonResponse(method, 200, "{}", new Headers({ "content-type": "application/json" }));
}

/** The JSON body every registry client understands (clients print `code: message`). */
export function errorBody(code: string, message: string, detail: unknown = null): string {
  return JSON.stringify({ errors: [{ code, message, detail }] });
}

/**
 * A RegistryError as its response: the error's status and headers, registry
 * JSON, and the API version — Docker checks it on /v2/ answers, error or not
 * (dist-spec "API Version Check"), and distribution sends it on every
 * response, so docxy's own errors carry it too.
 */
export function registryErrorResponse(error: RegistryError, method: string): Response {
  const headers = new Headers(error.headers);
  headers.set("content-type", "application/json; charset=utf-8");
  return jsonResponse(method, error.status, errorBody(error.ociCode, error.message, error.detail), headers);
}

/**
 * A HEAD answer has no body (distribution does the same) but keeps its
 * status and the length a GET would get (RFC 9110 §9.3.2); Bun keeps that
 * header on a null body (bun-elysia.md pitfall 8).
 */
function jsonResponse(method: string, status: number, body: string, headers: Headers): Response {
  headers.set(API_VERSION_HEADER, API_VERSION);
  headers.set("content-length", String(Buffer.byteLength(body)));
  return new Response(method === "HEAD" ? null : body, { status, headers });
}
