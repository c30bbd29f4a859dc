/**
 * Facts about the connection a Request arrived on, which a Web Request cannot
 * carry: the server edge records them, routes read them. Requests built in
 * tests without a server fall back to what their URL says.
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
