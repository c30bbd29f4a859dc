/** The OpenAPI page in process: the health and admin routes documented, the registry API hidden, no CDN. */
import { beforeAll, expect, test } from "bun:test";
import { createApp } from "../../../src/http/app";
import { inProcessServices } from "../../support/services";

let app: ReturnType<typeof createApp>;
beforeAll(async () => {
  app = createApp((await inProcessServices("")).services);
});

test("the spec documents /health, the admin API and the status page's JSON, never /v2/ or the token endpoints", async () => {
  const response = await app.handle(new Request("http://127.0.0.1:5000/docs/json"));
  expect(response.status).toBe(200);
  const spec = (await response.json()) as { paths: Record<string, unknown> };
  const paths = Object.keys(spec.paths);
  for (const path of ["/health", "/generate_204", "/metrics", "/admin/cache", "/admin/prewarm", "/admin/reload", "/status/cache", "/status/cache/repository", "/status/activity"]) expect(paths).toContain(path);
  expect(paths.filter((p) => p.startsWith("/v2") || p.startsWith("/auth"))).toEqual([]);
});

test("the page loads Swagger UI from docxy itself, not from a CDN", async () => {
  const html = await (await app.handle(new Request("http://127.0.0.1:5000/docs"))).text();
  expect(html).not.toMatch(/unpkg|jsdelivr|cdn\./i);
  const scripts = [...html.matchAll(/src="([^"]+)"/g)].map((m) => m[1]!);
  expect(scripts.length).toBeGreaterThan(0);
  for (const src of scripts) {
    expect(src.startsWith("/")).toBe(true);
    expect((await app.handle(new Request(`http://127.0.0.1:5000${src}`))).status).toBe(200);
  }
});
