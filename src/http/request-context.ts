/**
 * What a request carries besides its method, URL and headers: the facts of
 * its connection (recorded by the server edge: routing and the token realm
 * read them) and the notes routes take on the way — the client address, the
 * user, the registry and repository — which the edge writes to the access
 * log when the exchange ends. They travel on the request object itself
 * (Elysia hands the Request it was given to every handler unchanged), so
 * nothing is kept beside it.
 */
import type { ConnectionFacts } from "../auth/public-origin";

export interface Connection extends ConnectionFacts {
  remoteAddress: string;
}

/** What the application learnt about a request, for the access log. */
export interface RequestNotes {
  /** The client's address: the connection's, or X-Forwarded-For's behind a trusted proxy. */
  client?: string;
  user?: string;
  registry?: string;
  repository?: string;
  /** URL of the upstream origin that answered for this request: the upstream's own, or a fallback's. */
  source?: string;
}

export interface RequestContext {
  readonly connection: Connection;
  /** Filled in by routes while serving; read once the exchange is over. */
  readonly notes: RequestNotes;
}

/** A Request as the server edge hands it to the app. */
export class ServedRequest extends Request {
  readonly context: RequestContext;

  constructor(url: string, init: RequestInit, connection: Connection) {
    super(url, init);
    this.context = { connection, notes: {} };
  }
}

/**
 * The request's context. A Request built without a server (`app.handle` in a
 * test) gets a fresh one from what its URL says, on every call: a route takes
 * it once and passes it on.
 */
export function contextOf(request: Request): RequestContext {
  if (request instanceof ServedRequest) return request.context;
  const url = new URL(request.url);
  const secure = url.protocol === "https:";
  return { connection: { host: url.host, secure, localPort: Number(url.port) || (secure ? 443 : 80), remoteAddress: "" }, notes: {} };
}
