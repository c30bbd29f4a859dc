/**
 * An in-process fake upstream registry on a raw TCP socket, for cache tests
 * that need the upstream to misbehave on demand: send half a blob and wait,
 * cut the connection, send wrong bytes, answer 429, hang.
 *
 * Raw TCP rather than Bun.serve: Bun.serve drops `Content-Length` from a
 * streamed body (see tests/integration/proxy/pass-through.faults.test.ts), and docxy only
 * fills its cache from answers with a length. Every answer closes its
 * connection (`connection: close`), so one request is one connection.
 */
import { createServer, type Server, type Socket } from "node:net";

export interface FakeRequest {
  method: string;
  path: string;
  /** lower-case names */
  headers: Record<string, string>;
}

export interface FakeReply {
  /** A whole answer with an exact Content-Length (no body bytes for HEAD). */
  send(status: number, headers?: Record<string, string>, body?: Uint8Array | string): void;
  /** Status line and headers only; the caller sets content-length and then writes. */
  head(status: number, headers: Record<string, string>): void;
  write(bytes: Uint8Array): Promise<void>;
  end(): void;
  /** Closes the connection at once, whatever was announced. */
  cut(): void;
  /** Resolves when the connection has closed, from either side (docxy giving up on a download). */
  closed: Promise<void>;
}

export type FakeHandler = (request: FakeRequest, reply: FakeReply) => void | Promise<void>;

export interface FakeRegistry {
  url: string;
  /** every request, in arrival order */
  log: FakeRequest[];
  /** the docxy `[registry]` section for this fake (its default upstream) */
  toml: string;
  /** replaces the handler for what the defaults do not answer */
  handle(handler: FakeHandler): void;
  stop(): Promise<void>;
}

const REASONS: Record<number, string> = { 200: "OK", 206: "Partial Content", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error" };

/**
 * `/v2/` answers the usual Bearer challenge and `/token` an anonymous token;
 * everything else goes to `handler` (by default 404).
 */
export async function startFakeRegistry(handler?: FakeHandler): Promise<FakeRegistry> {
  let current: FakeHandler = handler ?? ((_, reply) => reply.send(404, { "content-type": "application/json" }, notFound()));
  const log: FakeRequest[] = [];
  const sockets = new Set<Socket>();
  let origin = "";

  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    let buffered = Buffer.alloc(0);
    let answered = false;
    socket.on("data", (chunk: Buffer) => {
      if (answered) return;
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf("\r\n\r\n");
      if (end < 0) return;
      answered = true;
      const [line, ...lines] = buffered.subarray(0, end).toString("latin1").split("\r\n");
      const [method = "", target = ""] = line!.split(" ");
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const at = l.indexOf(":");
        if (at > 0) headers[l.slice(0, at).trim().toLowerCase()] = l.slice(at + 1).trim();
      }
      const request: FakeRequest = { method, path: target, headers };
      log.push(request);
      const reply = replyOn(socket, method);
      const pathname = new URL(target, "http://fake").pathname;
      if (pathname === "/v2/" && !headers.authorization) {
        return reply.send(401, { "www-authenticate": `Bearer realm="${origin}/token",service="fake"`, "content-type": "application/json" }, "{}");
      }
      if (pathname === "/v2/") return reply.send(200, { "content-type": "application/json" }, "{}");
      if (pathname === "/token") return reply.send(200, { "content-type": "application/json" }, JSON.stringify({ token: "fake-token" }));
      void Promise.resolve(current(request, reply)).catch(() => reply.cut());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  origin = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  return {
    url: origin,
    log,
    toml: `[registry]\nupstream_registry = "${origin}"\nauth_realm = "${origin}/token"\nauth_service = "fake"\n`,
    handle(next) {
      current = next;
    },
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function replyOn(socket: Socket, method: string): FakeReply {
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  const head = (status: number, headers: Record<string, string>) => {
    const lines = [`HTTP/1.1 ${status} ${REASONS[status] ?? "Status"}`, "connection: close"];
    for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
    socket.write(`${lines.join("\r\n")}\r\n\r\n`);
  };
  return {
    head,
    send(status, headers = {}, body) {
      const bytes = typeof body === "string" ? Buffer.from(body) : body ? Buffer.from(body) : Buffer.alloc(0);
      head(status, { "content-length": String(bytes.length), ...headers });
      if (method !== "HEAD" && bytes.length > 0) socket.write(bytes);
      socket.end();
    },
    write(bytes) {
      return new Promise((resolve) => {
        if (socket.destroyed) return resolve();
        if (socket.write(bytes)) resolve();
        else {
          socket.once("drain", () => resolve());
          socket.once("close", () => resolve()); // the reader went away: nothing will drain
        }
      });
    },
    end() {
      socket.end();
    },
    cut() {
      socket.resetAndDestroy();
    },
    closed,
  };
}

/**
 * A chunked answer (no Content-Length; `headers` may add a lying one): the
 * `body` bytes, or that many bytes of "a", in 64 KiB chunks written as the
 * reader takes them. Resolves with how many body bytes went out before the
 * reader left or the body ended.
 */
export async function sendChunked(reply: FakeReply, status: number, headers: Record<string, string>, body: Uint8Array | number): Promise<number> {
  reply.head(status, { "transfer-encoding": "chunked", ...headers });
  const total = typeof body === "number" ? body : body.length;
  const filler = new Uint8Array(64 * 1024).fill(0x61);
  let sent = 0;
  let gone = false;
  void reply.closed.then(() => (gone = true));
  while (sent < total && !gone) {
    const length = Math.min(filler.length, total - sent);
    const piece = typeof body === "number" ? filler.subarray(0, length) : body.subarray(sent, sent + length);
    await reply.write(Buffer.concat([Buffer.from(`${length.toString(16)}\r\n`), piece, Buffer.from("\r\n")]));
    sent += length;
  }
  if (!gone) await reply.write(Buffer.from("0\r\n\r\n"));
  reply.end();
  return sent;
}

export function notFound(code = "MANIFEST_UNKNOWN"): string {
  return JSON.stringify({ errors: [{ code, message: "not found", detail: null }] });
}

/** A promise with its resolver, to hold a fake answer until the test lets it go. */
export function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}
