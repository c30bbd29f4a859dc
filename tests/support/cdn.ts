// A fake blob CDN in the role of production.cloudflare.docker.com: it serves the files the
// registry's `redirect` storage middleware points at (protocol.md §6.3) straight from the
// registry's filesystem root, and refuses requests that carry Authorization, so a proxy that
// forwards its upstream Bearer token across the redirect fails loudly.
import { join } from "node:path";

export interface CdnRequestRecord {
  method: string;
  path: string;
  /** the Range header, when sent */
  range?: string;
  /** an Authorization header was present (and the request was refused with 403) */
  authorization: boolean;
  status: number;
  /** the address the request came from (a proxy's outgoing address when docxy went through one) */
  peer?: string;
}

export interface Cdn {
  url: string; // origin, no trailing slash
  log: CdnRequestRecord[];
  stop(): Promise<void>;
}

// The redirect middleware keeps the storage path: /docker/registry/v2/blobs/<alg>/<2 hex>/<hex>/data
const BLOB_PATH = /^\/docker\/registry\/v2\/blobs\/sha256\/([0-9a-f]{2})\/([0-9a-f]{64})\/data$/;

/** `allowedAgents`: when set, only these User-Agents are served, as if clients could not reach the CDN. */
export function startCdn(rootDir: string, allowedAgents?: RegExp): Cdn {
  const log: CdnRequestRecord[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req, server) {
      const url = new URL(req.url);
      const record: CdnRequestRecord = {
        method: req.method,
        path: url.pathname,
        authorization: req.headers.has("authorization"),
        status: 0,
        peer: server.requestIP(req)?.address,
      };
      const range = req.headers.get("range");
      if (range !== null) record.range = range;
      log.push(record);
      const reachable = !allowedAgents || allowedAgents.test(req.headers.get("user-agent") ?? "");
      const res = reachable ? await answer(req, url.pathname, record.authorization, rootDir) : new Response("unreachable\n", { status: 403 });
      record.status = res.status;
      return res;
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, log, stop: () => server.stop(true) };
}

async function answer(req: Request, path: string, authorization: boolean, rootDir: string): Promise<Response> {
  if (authorization) return new Response("Authorization header not allowed on the CDN\n", { status: 403 });
  if (req.method !== "GET" && req.method !== "HEAD") return new Response(null, { status: 405 });
  const match = BLOB_PATH.exec(path);
  if (!match || match[2]?.slice(0, 2) !== match[1]) return new Response("not found\n", { status: 404 });
  const file = Bun.file(join(rootDir, path));
  if (!(await file.exists())) return new Response("not found\n", { status: 404 });
  const headers = { "content-type": "application/octet-stream", "accept-ranges": "bytes" };
  // Range applies to GET only (RFC 9110 §14.2). Bun would also answer Range by itself for a
  // Bun.file body, but then the handler never learns the status it sent, so do it here: an
  // explicit 206 with a slice is sent as is (sendfile still), and upstream.test.ts pins it.
  const range = req.method === "GET" ? parseRange(req.headers.get("range"), file.size) : undefined;
  if (range === "unsatisfiable") {
    return new Response(null, { status: 416, headers: { ...headers, "content-range": `bytes */${file.size}` } });
  }
  if (range) {
    const [start, end] = range;
    return new Response(file.slice(start, end + 1), {
      status: 206,
      headers: { ...headers, "content-range": `bytes ${start}-${end}/${file.size}` },
    });
  }
  // HEAD drops the body but keeps the file's Content-Length.
  return new Response(file, { headers });
}

/**
 * One `bytes=a-b`, `bytes=a-` or `bytes=-n` range, clamped to the size. Anything else (another
 * unit, several ranges, bad syntax) is ignored and the whole file is sent, as RFC 9110 allows.
 */
export function parseRange(header: string | null, size: number): [number, number] | "unsatisfiable" | undefined {
  const m = header ? /^bytes=(\d*)-(\d*)$/.exec(header.trim()) : null;
  if (!m || (m[1] === "" && m[2] === "")) return undefined;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    return suffix === 0 || size === 0 ? "unsatisfiable" : [Math.max(0, size - suffix), size - 1];
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Number(m[2]);
  if (start >= size) return "unsatisfiable";
  if (end < start) return undefined;
  return [start, Math.min(end, size - 1)];
}
