/**
 * The registry API under `/v2/`. Routes only translate: they parse the path,
 * pick the upstream and origin, and hand over to the domain.
 */
import { Elysia } from "elysia";
import { RegistryError } from "../../oci/errors";
import { parsePullPath, unsupportedMethod } from "../../proxy/pull-path";
import type { Services } from "../../services";
import { connectionOf } from "../connection";

export function v2Routes(services: Services) {
  const route = (request: Request) => {
    const connection = connectionOf(request);
    const upstream = services.upstreams.forHost(connection.host);
    return { upstream, origin: services.publicOrigin.resolve(upstream.publicBaseUrl, connection) };
  };

  return new Elysia({ name: "docxy/v2", detail: { hide: true } })
    .all("/v2/", ({ request }) => {
      const method = pullMethod(request);
      return services.ping.ping({
        method,
        authorization: request.headers.get("authorization"),
        signal: request.signal,
        ...route(request),
      });
    })
    .all("/v2/*", ({ request, params }) => {
      const method = pullMethod(request);
      const path = parsePullPath(params["*"]);
      if (!path) throw new RegistryError("NOT_FOUND", `unknown registry API path /v2/${params["*"]}`);
      return services.pull.pull({
        path,
        method,
        query: new URL(request.url).searchParams,
        headers: request.headers,
        signal: request.signal,
        ...route(request),
      });
    });
}

/** The pull API is GET and HEAD; pushes and deletes are refused with the registry's own code. */
function pullMethod(request: Request): "GET" | "HEAD" {
  if (request.method === "GET" || request.method === "HEAD") return request.method;
  throw unsupportedMethod(request.method);
}
