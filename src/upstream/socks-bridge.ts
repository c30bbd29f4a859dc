/**
 * Lets Bun's fetch go through a SOCKS5 proxy. Bun's fetch speaks only HTTP
 * proxies (`proxy: "socks5://…"` rejects with UnsupportedProxyProtocol, checked
 * on Bun 1.4.5; oven-sh/bun#16812 is open), so each SOCKS proxy gets a small
 * HTTP proxy of docxy's own on a loopback port, handed to fetch as its `proxy`:
 *
 * - `CONNECT host:port` (every https upstream) opens a SOCKS tunnel and pipes
 *   bytes both ways; TLS stays end to end between fetch and the upstream.
 * - An absolute-form request (`GET http://host/…`, plain-http upstreams) is
 *   forwarded over a fresh SOCKS tunnel per request: fetch keeps one
 *   connection to its proxy for every target host, so the bridge cannot just
 *   pipe it.
 *
 * The listener accepts only its own random Proxy-Authorization, so no other
 * local process can borrow the SOCKS account through it. Bodies are piped,
 * never buffered.
 */
import { randomBytes } from "node:crypto";
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { OutboundProxy } from "./proxy-url";
import { openSocksTunnel, ProxyError } from "./socks5";

/**
 * Marks the bridge's own 502 on a plain-http request, for client.ts to tell it from an upstream's
 * (destroying the response instead reaches fetch as an empty 200 on Bun 1.4.5).
 */
export const BRIDGE_FAILURE = "docxy-socks-failure";

const HOP_BY_HOP = ["connection", "keep-alive", "proxy-authorization", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"];

export class SocksBridge {
  private listening?: Promise<string>;
  private server?: Server;
  private readonly secret = randomBytes(18).toString("base64url");
  /** Why the last tunnel to each `host:port` failed, until one succeeds: fetch only sees the connection drop. */
  private readonly failures = new Map<string, string>();

  constructor(private readonly proxy: OutboundProxy) {}

  /** What fetch takes as `proxy` (with the bridge's secret in it: never printed); listens on first use. */
  url(): Promise<string> {
    this.listening ??= this.listen();
    return this.listening;
  }

  /** The reason the last tunnel to `host:port` failed, if it did. */
  failureFor(host: string, port: number): string | undefined {
    return this.failures.get(target(host, port));
  }

  close(): void {
    this.server?.close();
    this.server?.closeAllConnections();
  }

  private async listen(): Promise<string> {
    const server = createServer((req, res) => void this.forward(req, res));
    server.on("connect", (req: IncomingMessage, client: Duplex, head: Buffer) => void this.tunnel(req, client, head));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", resolve);
    });
    server.unref(); // never what keeps docxy running
    return `http://docxy:${this.secret}@127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  private authorised(req: IncomingMessage): boolean {
    return req.headers["proxy-authorization"] === `Basic ${Buffer.from(`docxy:${this.secret}`).toString("base64")}`;
  }

  /** CONNECT: a raw tunnel (https upstreams). */
  private async tunnel(req: IncomingMessage, client: Duplex, head: Buffer): Promise<void> {
    client.on("error", () => client.destroy());
    if (!this.authorised(req)) {
      client.end("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    // `host:port` or `[v6]:port`; not through URL, which would drop a port 80 as http's default
    const target = /^\[?([^\]]*)\]?:(\d+)$/.exec(req.url ?? "");
    if (target === null) {
      client.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    const upstream = await this.open(target[1]!, Number(target[2]));
    if (upstream === undefined || client.destroyed) {
      upstream?.destroy();
      client.end("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    upstream.on("error", () => client.destroy());
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
    if (head.length > 0) upstream.write(head);
    upstream.pipe(client);
    client.pipe(upstream);
  }

  /** An absolute-form request (plain-http upstreams), sent on over a tunnel of its own. */
  private async forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.authorised(req)) {
      res.writeHead(407, { "content-length": "0" }).end();
      return;
    }
    const url = URL.parse(req.url ?? "");
    if (url === null || url.protocol !== "http:") {
      res.writeHead(400, { "content-length": "0" }).end();
      return;
    }
    const upstream = await this.open(url.hostname, Number(url.port || 80));
    if (upstream === undefined) {
      res.writeHead(502, { [BRIDGE_FAILURE]: "1", "content-length": "0" }).end(); // the reason: failureFor()
      return;
    }
    const headers = { ...req.headers };
    for (const name of HOP_BY_HOP) delete headers[name];
    headers.connection = "close"; // the tunnel is this request's alone
    const outgoing = httpRequest(
      { method: req.method, path: `${url.pathname}${url.search}`, headers, createConnection: () => upstream },
      (answer) => {
        const copied = { ...answer.headers };
        for (const name of HOP_BY_HOP) delete copied[name];
        res.writeHead(answer.statusCode ?? 502, copied);
        answer.pipe(res);
      },
    );
    outgoing.on("socket", () => upstream.resume()); // paused after the handshake, and node's client does not resume it itself
    outgoing.on("error", () => res.destroy());
    res.on("close", () => upstream.destroy());
    req.pipe(outgoing);
  }

  private async open(hostname: string, port: number): Promise<Socket | undefined> {
    const host = hostname.replace(/^\[(.*)\]$/, "$1");
    try {
      const socket = await openSocksTunnel(this.proxy, host, port);
      this.failures.delete(target(host, port));
      return socket;
    } catch (error) {
      this.failures.set(target(host, port), error instanceof ProxyError ? error.message : `SOCKS proxy ${this.proxy.display}: ${String(error)}`);
      return undefined;
    }
  }
}

function target(host: string, port: number): string {
  return `${host.replace(/^\[(.*)\]$/, "$1").toLowerCase()}:${port}`;
}
