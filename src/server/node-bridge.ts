/**
 * Serves the Elysia app through `node:http` (inside Bun) instead of Bun.serve.
 *
 * Why: Bun.serve replaces any Content-Length with chunked encoding when the
 * body is a stream (oven-sh/bun#10507, open in Bun 1.4.5;
 * research/bun-elysia.md §1.4), and every blob on a cache miss is a stream.
 * A blob without a length breaks progress bars, containerd's parallel fetch
 * and Docker 29 (Wharf v0.5.20/v0.5.21). Bun's node:http honours the length
 * we set and applies backpressure through `pipeline`. The measurements behind
 * this choice are in the README's design notes.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { Readable } from "node:stream";
import type { TLSSocket } from "node:tls";
import { fileOf, handoffOf, type FileBody } from "../util/file-response";
import { ServedRequest, type RequestContext } from "../http/request-context";
import { RegistryError } from "../oci/errors";
import { drained, type FileSender } from "./file-sender";

export type Handler = (request: Request) => Promise<Response> | Response;

export interface Exchange {
  /** The request's connection and what the app noted about it. */
  context: RequestContext;
  /** The response's X-Cache, if any. */
  cache?: string;
  method: string;
  path: string;
  /** The query string of registry API requests (`ns`, `n`, `last`); token requests' is left out. */
  query: string;
  status: number;
  /** Body bytes handed to the socket. */
  bytes: number;
  ms: number;
  remoteAddress: string;
  /** False when the connection ended before the whole response was written. */
  complete: boolean;
}

/** `bodyTimeoutMs`: how long a request body may take to arrive in full (`[server] request_body_timeout`). */
export function nodeHandler(handle: Handler, onDone: (exchange: Exchange) => void, files: FileSender, bodyTimeoutMs: number) {
  return async function serveOne(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const begin = performance.now();
    const socket = req.socket;
    const target = originForm(req.url);
    const request = toWebRequest(req, res, target, bodyTimeoutMs);
    let status = 0;
    let cache: string | undefined;
    const body = { bytes: 0 };
    /** The Content-Length promised; a client may hang up once it has that many bytes. */
    let promised: number | undefined;
    res.once("close", () => {
      onDone({
        context: request.context,
        cache,
        method: req.method ?? "",
        path: target.split("?")[0] ?? "",
        query: target.startsWith("/v2/") && target.includes("?") ? target.slice(target.indexOf("?") + 1) : "",
        status,
        bytes: body.bytes,
        ms: Math.round(performance.now() - begin),
        remoteAddress: socket.remoteAddress ?? "",
        // A cold MISS's body ends only after the commit, which can be after the client had every
        // byte it was promised and closed (skopeo does): that read was whole all the same.
        complete: res.writableFinished || (promised !== undefined && body.bytes >= promised),
      });
    });
    let response: Response;
    try {
      response = await handle(request);
    } catch {
      // The app maps every error itself; reaching here means the client left.
      res.destroy();
      return;
    }
    status = response.status;
    cache = response.headers.get("x-cache") ?? undefined;
    const length = response.headers.get("content-length");
    if (length !== null && req.method !== "HEAD") promised = Number(length);
    // The client may have left while the answer was being prepared (a cold blob waits for the
    // upstream's head): nothing can be sent, and the body must let go of what it holds.
    if (res.destroyed) return abandon(response);
    await writeWebResponse(response, req.method ?? "GET", res, body, files);
  };
}

/**
 * The request target in origin form (`/v2/?ns=…`). An absolute-form target
 * (`GET http://x/v2/ HTTP/1.1`, which servers must accept, RFC 9112 §3.2.2)
 * keeps its path and query but never its host. Anything else is `/`.
 */
export function originForm(url: string | undefined): string {
  if (url?.startsWith("/")) return url;
  const absolute = url ? URL.parse(url) : null;
  return absolute && /^https?:$/.test(absolute.protocol) ? `${absolute.pathname}${absolute.search}` : "/";
}

function toWebRequest(req: IncomingMessage, res: ServerResponse, target: string, bodyTimeoutMs: number): ServedRequest {
  const secure = Boolean((req.socket as TLSSocket).encrypted);
  // The URL's authority is the socket's own address, never the Host header: Elysia finds the path
  // at a fixed offset in the URL (bun-elysia.md pitfall 16), so `Host: x` would move it
  // (`/v2/` served the status page). An IP literal and a port are always long enough. The
  // Host header is kept in the connection facts, which is what routing and the realm read.
  const local = req.socket.localAddress ?? "127.0.0.1";
  const base = `${secure ? "https" : "http"}://${local.includes(":") ? `[${local}]` : local}:${req.socket.localPort ?? 0}`;
  const headers = new Headers();
  for (const [name, values] of Object.entries(req.headersDistinct)) {
    for (const value of values ?? []) headers.append(name, value);
  }
  const aborted = new AbortController();
  res.once("close", () => {
    if (!res.writableFinished) aborted.abort();
  });
  const method = req.method ?? "GET";
  const hasBody = method !== "GET" && method !== "HEAD";
  const init = {
    method,
    headers,
    signal: aborted.signal,
    body: hasBody ? bodyWithDeadline(req, res, bodyTimeoutMs) : undefined,
    duplex: "half", // required by fetch for stream bodies
  } as RequestInit;
  return new ServedRequest(new URL(target, base).href, init, {
    host: req.headers.host ?? null,
    secure,
    localPort: req.socket.localPort ?? 0,
    remoteAddress: req.socket.remoteAddress ?? "",
  });
}

/**
 * The request body, which must arrive whole within `ms` of the head. Bun's
 * node:http ignores `requestTimeout` (checked on 1.4.5: a body trickled a
 * byte at a time stayed open past it), and an idle timeout per chunk would
 * let a client hold the socket forever at one byte per period. A deadline on
 * the whole body costs legitimate clients nothing: docxy only takes small
 * bodies (token forms, admin JSON). Past it, a handler reading the body gets
 * a 408 (RFC 9110 §15.5.9) and the connection closes once that is written;
 * a handler that never read it has answered already, so the socket just
 * closes. The source is not cancelled (`preventCancel`): that would destroy
 * the socket before the 408 could be sent.
 */
function bodyWithDeadline(req: IncomingMessage, res: ServerResponse, ms: number): ReadableStream {
  const expired = new AbortController();
  const socket = req.socket;
  const timer = setTimeout(() => {
    expired.abort(
      new RegistryError("BAD_REQUEST", `request body not received within ${ms / 1000}s`, { status: 408, headers: { connection: "close" } }),
    );
    if (res.writableFinished) socket.destroy();
    else res.once("finish", () => socket.destroy());
  }, ms);
  const settle = () => clearTimeout(timer);
  req.once("end", settle);
  res.once("close", settle);
  return (Readable.toWeb(req) as ReadableStream).pipeThrough(new TransformStream(), { signal: expired.signal, preventCancel: true });
}

async function writeWebResponse(response: Response, method: string, res: ServerResponse, sent: { bytes: number }, files: FileSender): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  response.headers.forEach((value, name) => {
    if (name !== "set-cookie") headers[name] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) headers["set-cookie"] = cookies;
  // A GET answered without a body must not announce one (the client would wait for it forever).
  if (response.body === null && method !== "HEAD" && headers["content-length"] !== undefined) headers["content-length"] = "0";
  res.writeHead(response.status, headers);
  if (method === "HEAD" || response.body === null) {
    abandon(response);
    res.end();
    return;
  }
  // Send the head now: if the body then fails before its first byte, Bun's node:http would
  // otherwise answer a bare "200, Connection: close" with an empty body on destroy(), which a
  // client takes for a complete response; with the head (and its length) out, it sees a cut.
  res.flushHeaders();
  const file = fileOf(response);
  try {
    if (file) {
      // The Web body of a file response is left unread: cancelling it would count as "done" too early.
      await files.send(res, file, (count) => (sent.bytes += count)).finally(file.done);
    } else {
      const handoff = handoffOf(response);
      if (handoff) handoff.accepted = true;
      await sendStream(response.body, res, (count) => (sent.bytes += count)).catch((error: unknown) => {
        // The body may have handed its rest over just before the client left: let it go too.
        if (handoff?.rest) release(handoff.rest);
        throw error;
      });
      const rest = handoff?.rest;
      if (rest) await files.send(res, rest, (count) => (sent.bytes += count)).finally(rest.done);
      else res.end();
    }
  } catch {
    // The upstream or the disk failed mid-body, or the client left. Never end
    // cleanly: a short body must not look like success to the client.
    res.destroy();
  }
}

/**
 * Writes a Web body to `res` chunk by chunk (without ending it), one chunk in flight: the next is
 * read only once the socket took the last one (or drained), which is all the
 * backpressure a fill's follower needs. Rejects when the body fails or the
 * client leaves; either way the body is cancelled, at once when the client
 * leaves while a read waits (a stalled fill must learn its reader is gone:
 * `continue_on_disconnect = false` stops it then).
 *
 * Why not `pipeline(Readable.fromWeb(body), res)`: the two stream machines
 * per chunk cost a cold blob about a quarter of its throughput here (a relay
 * of 512 MiB measured side by side), and Bun's pipeline() refuses a
 * destination closed meanwhile without destroying the source, whose later
 * error then ends the process.
 */
async function sendStream(body: ReadableStream<Uint8Array>, res: ServerResponse, onBytes: (count: number) => void): Promise<void> {
  const reader = body.getReader();
  const leave = () => {
    if (!res.writableFinished) void reader.cancel(new Error("client closed the connection")).catch(() => undefined);
  };
  res.once("close", leave);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (res.destroyed) throw new Error("client closed the connection");
      if (done) break;
      onBytes(value.length);
      if (!res.write(value)) await drained(res);
    }
  } catch (error) {
    void reader.cancel(error).catch(() => undefined);
    throw error;
  } finally {
    res.off("close", leave);
  }
}

/** A handed-over rest that will not be sent: its file is closed and its reader leaves. */
function release(rest: FileBody): void {
  void rest.handle?.close().catch(() => {});
  rest.done();
}

/** A response that will not be sent: its body (a fill's reader, a held cache entry) is released. */
function abandon(response: Response): void {
  const file = fileOf(response);
  if (file) return file.done();
  if (response.body && !response.bodyUsed) void response.body.cancel().catch(() => undefined);
}
