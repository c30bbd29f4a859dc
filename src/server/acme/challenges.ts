/**
 * HTTP-01 challenges (RFC 8555 §8.3) answered by docxy's own plain-HTTP
 * listener, so no webroot, no second server and no port-80 fight.
 *
 * The CA fetches `http://<name>/.well-known/acme-challenge/<token>` on port
 * 80 and expects the key authorization as the body. Only tokens of orders
 * in progress are known; anything else is 404 from the normal app.
 */
import type { Handler } from "../node-bridge";

export const ACME_CHALLENGE_PREFIX = "/.well-known/acme-challenge/";

export class Http01Challenges {
  readonly #pending = new Map<string, string>();

  add(token: string, keyAuthorization: string): void {
    this.#pending.set(token, keyAuthorization);
  }

  remove(token: string): void {
    this.#pending.delete(token);
  }

  /** The body to answer `GET /.well-known/acme-challenge/<token>` with, if that token is pending. */
  response(token: string): string | undefined {
    return this.#pending.get(token);
  }
}

/**
 * Wraps the handler of a plain-HTTP listener: challenge requests are answered
 * here, before routing, redirects, access rules and auth (the CA must always
 * get through); every other request goes to `next` untouched.
 */
export function withAcmeChallenges(lookup: (token: string) => string | undefined, next: Handler): Handler {
  return (request) => {
    if (request.method !== "GET" && request.method !== "HEAD") return next(request);
    const { pathname } = new URL(request.url);
    if (!pathname.startsWith(ACME_CHALLENGE_PREFIX)) return next(request);
    const body = lookup(pathname.slice(ACME_CHALLENGE_PREFIX.length));
    if (body === undefined) return next(request);
    return new Response(request.method === "HEAD" ? null : body, {
      headers: { "content-type": "application/octet-stream", "content-length": String(Buffer.byteLength(body)), "cache-control": "no-store" },
    });
  };
}
