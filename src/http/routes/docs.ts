/**
 * The OpenAPI page for the health and admin routes, at `/docs` (JSON at
 * `/docs/json`). Swagger UI's files are embedded in the binary and served
 * from here: the plugin's defaults load them from unpkg, which a proxy for
 * networks without internet access cannot reach (research/bun-elysia.md §6).
 */
import { openapi } from "@elysiajs/openapi";
import { Elysia } from "elysia";
import swaggerCss from "swagger-ui-dist/swagger-ui.css" with { type: "file" };
import swaggerJs from "swagger-ui-dist/swagger-ui-bundle.js" with { type: "file" };
import { VERSION } from "../../version";

const ASSETS = "/docs/assets";

export function docsRoutes() {
  const asset = (path: string, type: string) => () =>
    new Response(Bun.file(path), { headers: { "content-type": type, "content-disposition": "inline" } });

  return new Elysia({ name: "docxy/docs" })
    .use(
      openapi({
        path: "/docs",
        provider: "swagger-ui",
        exclude: { paths: [/^\/v2/, /^\/auth\//, /^\/docs/] },
        documentation: {
          info: {
            title: "docxy",
            version: VERSION,
            description: "Health and administration API of the docxy registry proxy. The registry API itself is under /v2/.",
          },
        },
        swagger: { cdn: `${ASSETS}/swagger-ui-bundle.js`, theme: `${ASSETS}/swagger-ui.css`, validatorUrl: "none" },
      }),
    )
    .get(`${ASSETS}/swagger-ui-bundle.js`, asset(swaggerJs, "text/javascript; charset=utf-8"), { detail: { hide: true } })
    .get(`${ASSETS}/swagger-ui.css`, asset(swaggerCss, "text/css; charset=utf-8"), { detail: { hide: true } });
}
