/**
 * Facts about a request that a Web Request cannot carry. The server edge
 * records the connection's (routes read them); routes record what they
 * learnt — who the user is, which registry and repository — for the access
 * log the edge writes when the exchange ends. Requests built in tests
 * without a server fall back to what their URL says.
 */
import type { ConnectionFacts } from "../auth/public-origin";

export interface Connection extends ConnectionFacts {
  remoteAddress: string;
}

const connections = new WeakMap<Request, Connection>();

export function recordConnection(request: Request, connection: Connection): void {
  connections.set(request, connection);
}

export function connectionOf(request: Request): Connection {
  const known = connections.get(request);
  if (known) return known;
  const url = new URL(request.url);
  const secure = url.protocol === "https:";
  return { host: url.host, secure, localPort: Number(url.port) || (secure ? 443 : 80), remoteAddress: "" };
}

/** What the application learnt about a request, for the access log. */
export interface RequestNotes {
  /** The client's address: the connection's, or X-Forwarded-For's behind a trusted proxy. */
  client?: string;
  user?: string;
  registry?: string;
  repository?: string;
}

const notes = new WeakMap<Request, RequestNotes>();

export function note(request: Request, facts: RequestNotes): void {
  notes.set(request, { ...notes.get(request), ...facts });
}

export function notesOf(request: Request): RequestNotes {
  return notes.get(request) ?? {};
}
