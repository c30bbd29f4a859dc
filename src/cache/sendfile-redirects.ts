/**
 * Cache hits served with sendfile, from a port of their own.
 *
 * Why a second port: a hit is a file, and only Bun.serve sends a file with
 * sendfile; but the proxy port must be node:http, because Bun.serve drops the
 * Content-Length of every streamed body (a miss; server/node-bridge.ts), and
 * one port cannot be served by both. So, when `[server] sendfile_enabled`, a
 * GET of a cached blob on the proxy port answers 307 to the sendfile port,
 * as registries redirect blob GETs to their CDN, with a ticket: the access
 * checks ran on the proxy port, and the sendfile port has no other way to
 * tell who may read what.
 *
 * A ticket is an HMAC-SHA256 over the digest and an expiry a minute ahead,
 * keyed with random bytes made at start: a restart voids the outstanding ones
 * and a client whose blob GET then fails retries through the proxy port.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";

const TICKET_TTL_MS = 60_000;
const TICKET = /^(\d{1,12})\.([A-Za-z0-9_-]{43})$/;

export class SendfileRedirects {
  private port: number | undefined;

  constructor(
    /** `[server] sendfile_url`: where clients reach the port, when not the host they used. */
    private readonly configuredUrl: string | undefined,
    private readonly key: Buffer = randomBytes(32),
    private readonly now: () => number = Date.now,
  ) {}

  /** Set by the server edge once the port listens (it may have been 0: any free port). */
  listening(port: number): void {
    this.port = port;
  }

  /**
   * The URL a client that reached us at `origin` fetches `digest` from, or
   * undefined when it should be served here: before the port listens, or when
   * the client came over TLS and no sendfile_url says otherwise (the sendfile
   * port is plain HTTP, and private layers must not leave TLS behind silently).
   */
  location(origin: string, digest: string): string | undefined {
    if (this.port === undefined) return undefined;
    let base = this.configuredUrl?.replace(/\/+$/, "");
    if (!base) {
      const url = new URL(origin);
      if (url.protocol !== "http:") return undefined;
      base = `http://${url.hostname}:${this.port}`;
    }
    return `${base}/blobs/${digest}?ticket=${this.ticket(digest)}`;
  }

  /** Whether `ticket` lets its holder read `digest` now. */
  admits(digest: string, ticket: string | null): boolean {
    const match = TICKET.exec(ticket ?? "");
    if (!match) return false;
    const expires = Number(match[1]);
    if (expires * 1000 < this.now()) return false;
    return timingSafeEqual(Buffer.from(this.sign(digest, expires)), Buffer.from(match[2]!));
  }

  private ticket(digest: string): string {
    const expires = Math.ceil((this.now() + TICKET_TTL_MS) / 1000);
    return `${expires}.${this.sign(digest, expires)}`;
  }

  private sign(digest: string, expires: number): string {
    return new Bun.CryptoHasher("sha256", this.key).update(`${digest}\n${expires}`).digest("base64url");
  }
}
