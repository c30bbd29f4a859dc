/**
 * The status and headers of a blob answer, the same on the proxy port and the
 * sendfile port: exact length, `Range` → 206 (or 416), digest and cache
 * status. HEAD gets the length of what a GET would send.
 */
import { API_VERSION, API_VERSION_HEADER, DOCKER_CONTENT_DIGEST } from "../oci/headers";
import { parseRange } from "./range";

export type BlobHead =
  | { status: 416; headers: Headers }
  | { status: 200 | 206; headers: Headers; start: number; end: number };

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
