/**
 * The registry API under `/v2/`. Routes only translate: they pick the
 * upstream (upstream/routing.ts), parse the path, and hand over to the domain.
 *
 * Tested in process through the whole app: tests/http/app.test.ts and tests/http/request-context.test.ts.
 */
import { Elysia } from "elysia";
import { RegistryError } from "../../oci/errors";
import { parsePullPath, unsupportedMethod } from "../../oci/paths";
import type { Services } from "../../services";
import { knownRegistry, routeByHost, routePull } from "../../upstream/routing";
import { API_VERSION, API_VERSION_HEADER } from "../../oci/headers";
import { contextOf, type RequestContext } from "../request-context";
import { admit, admitUser, checkImage, shaped } from "../guard";
import { authenticate } from "../proxy-auth";

export function v2Routes(services: Services) {
  const origin = (context: RequestContext, publicBaseUrl: string | undefined) => services.publicOrigin.resolve(publicBaseUrl, context.connection);

  return new Elysia({ name: "docxy/v2", detail: { hide: true } })
    .all("/v2/", async ({ request }) => {
      const context = contextOf(request);
      await admit(services.guards, request, context);
      const method = pullMethod(request);
      const ns = new URL(request.url).searchParams.get("ns");
      const upstream = ns !== null ? knownRegistry(services.upstreams, ns) : routeByHost(services.upstreams, context.connection.host).upstream;
      if (services.proxyAuth) {
        // docxy's own users: the version check is ours to answer, the upstream is not involved.
        const user = authenticate(services.proxyAuth, request, origin(context, upstream.publicBaseUrl));
        context.notes.user = user;
        await admitUser(services.guards, user);
        return new Response(method === "HEAD" ? null : "{}", { headers: { "content-type": "application/json", [API_VERSION_HEADER]: API_VERSION } });
      }
      return services.ping.ping({
        method,
        authorization: request.headers.get("authorization"),
        pullsAsProxy: services.upstreamIdentity(upstream, request) === "proxy",
        signal: request.signal,
        upstream,
        origin: origin(context, upstream.publicBaseUrl),
      });
    })
    .all("/v2/*", async ({ request, params }) => {
      const context = contextOf(request);
      const client = await admit(services.guards, request, context);
      const method = pullMethod(request);
      const query = new URL(request.url).searchParams;
      const { route, rest } = routePull(services.upstreams, { ns: query.get("ns"), host: context.connection.host }, params["*"]);
      const path = parsePullPath(rest);
      if (!path) throw new RegistryError("NOT_FOUND", `unknown registry API path /v2/${params["*"]}`);
      const originUrl = origin(context, route.upstream.publicBaseUrl);
      Object.assign(context.notes, { registry: route.upstream.registry, repository: path.name });
      let headers = request.headers;
      if (services.proxyAuth) {
        // The client names the repository with the prefix it routed by; its token says so too.
        const named = route.prefix ? `${route.prefix}/${path.name}` : path.name;
        const user = authenticate(services.proxyAuth, request, originUrl, named);
        context.notes.user = user;
        await admitUser(services.guards, user);
        headers = new Headers(headers);
        headers.delete("authorization"); // docxy's token is for docxy; upstream, docxy pulls as itself
      }
      checkImage(services.guards, route, path);
      const response = await services.reads.answer({
        path,
        identity: services.upstreamIdentity(route.upstream, request),
        method,
        query,
        headers,
        signal: request.signal,
        route,
        origin: originUrl,
        client,
        trace: context.notes,
      });
      return path.kind === "blobs" ? shaped(services.guards, context, response) : response;
    });
}

/** The pull API is GET and HEAD; pushes and deletes are refused with the registry's own code. */
function pullMethod(request: Request): "GET" | "HEAD" {
  if (request.method === "GET" || request.method === "HEAD") return request.method;
  throw unsupportedMethod(request.method);
}
