/**
 * Token endpoints: `/auth/<name>/token` names its upstream, `/auth/token`
 * picks it by Host (Wharf's rule); a registry prefix on the requested
 * repositories wins over both (upstream/routing.ts routeToken). GET for the
 * classic token flow, POST for the
 * OAuth2 form that containerd (with credentials) and Docker (with an identity
 * token) use. The form is read raw, not parsed by Elysia, so that parameter
 * order and repeated keys survive.
 *
 * Tested in process through the whole app: tests/http/app.test.ts; with docxy's own users,
 * through the binary: tests/integration/http/proxy-auth.test.ts.
 */
import { Elysia, t } from "elysia";
import { RegistryError } from "../../oci/errors";
import type { Services } from "../../services";
import { routeToken } from "../../upstream/routing";
import type { Upstream } from "../../upstream/table";
import { contextOf } from "../request-context";
import { admit } from "../guard";

/** An OAuth2 token form is a few hundred bytes; anything much larger is not one. */
const MAX_FORM_BYTES = 64 * 1024;

export function authRoutes(services: Services) {
  const exchange = async (request: Request, named?: Upstream) => {
    const context = contextOf(request);
    const client = await admit(services.guards, request, context);
    const form = request.method === "POST" ? await readForm(request) : undefined;
    const query = new URL(request.url).searchParams;
    if (services.proxyAuth) {
      // docxy's own users log in to docxy, not to the upstream.
      return services.proxyAuth.login.exchange({ query, form, authorization: request.headers.get("authorization"), client });
    }
    const scopes = (form ?? query).getAll("scope");
    const route = routeToken(services.upstreams, { ns: null, host: context.connection.host }, scopes, named);
    return services.tokens.exchange({
      upstream: route.upstream,
      prefix: route.prefix,
      query,
      form,
      authorization: request.headers.get("authorization"),
      signal: request.signal,
    });
  };
  const byHost = ({ request }: { request: Request }) => exchange(request);
  const byName = ({ request, params }: { request: Request; params: { registry: string } }) => {
    const upstream = services.upstreams.byName(params.registry);
    if (!upstream) throw new RegistryError("NOT_FOUND", `no upstream named ${JSON.stringify(params.registry)}`);
    return exchange(request, upstream);
  };
  const named = { params: t.Object({ registry: t.String({ pattern: "^[A-Za-z0-9._-]+$" }) }) };

  return new Elysia({ name: "docxy/auth", detail: { hide: true } })
    .get("/auth/token", byHost)
    .post("/auth/token", byHost, { parse: "none" })
    .get("/auth/:registry/token", byName, named)
    .post("/auth/:registry/token", byName, { ...named, parse: "none" });
}

async function readForm(request: Request): Promise<URLSearchParams> {
  const type = request.headers.get("content-type") ?? "";
  if (!type.toLowerCase().startsWith("application/x-www-form-urlencoded")) {
    throw new RegistryError("BAD_REQUEST", "token POST must be application/x-www-form-urlencoded");
  }
  const tooLarge = () => new RegistryError("BAD_REQUEST", `token form larger than ${MAX_FORM_BYTES} bytes`, { status: 413 });
  if (Number(request.headers.get("content-length") ?? 0) > MAX_FORM_BYTES) throw tooLarge();
  // Counted while read, never buffered whole: a chunked body announces no length.
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of request.body ?? []) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) throw tooLarge();
    parts.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(parts).toString("utf8"));
}
