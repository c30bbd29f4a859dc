/**
 * The plain-HTTP port in standalone HTTPS mode (Wharf §1.3): registry,
 * token and health paths get a 301 to the HTTPS origin; everything else a
 * 404. The target comes from `public_base_url` or the self-addressed Host
 * rule (auth/public-origin.ts), never from an arbitrary Host header.
 */
import { Elysia } from "elysia";
import type { Services } from "../services";
import { routeByHost } from "../upstream/routing";
import { contextOf } from "./request-context";
import { errorResponse } from "./errors";

const REDIRECTED = /^\/(?:v2(?:\/|$)|auth\/|health$)/;

export function createRedirectApp(services: Services, httpsPort: number) {
  const redirect = ({ request }: { request: Request }) => {
    const url = new URL(request.url);
    if (!REDIRECTED.test(url.pathname)) return undefined; // falls through to NOT_FOUND
    const { connection } = contextOf(request);
    const { upstream } = routeByHost(services.upstreams, connection.host);
    // The HTTPS listener's port replaces the one the client used for plain HTTP.
    const name = connection.host?.replace(/:\d+$/, "");
    const host = name === undefined ? null : httpsPort === 443 ? name : `${name}:${httpsPort}`;
    const origin = services.publicOrigin.resolve(upstream.publicBaseUrl, { host, secure: true, localPort: httpsPort });
    return new Response(null, { status: 301, headers: { location: `${origin}${url.pathname}${url.search}` } });
  };
  return new Elysia({ name: "docxy/redirect" })
    .onError({ as: "global" }, ({ code, error, request }) => errorResponse(code, error, request, services.log))
    .onRequest(redirect);
}
