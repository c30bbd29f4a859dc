/**
 * The status page's JSON in process, against the real test registry (the
 * cache filled by the admin API's pre-warm): what it tells, and to whom.
 * In a real browser, through the binary:
 * tests/integration/http/status-page-browser.test.ts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createApp } from "../../../src/http/app";
import { ServedRequest } from "../../../src/http/request-context";
import type { Services } from "../../../src/services";
import { waitFor } from "../../support/cache/harness";
import { inProcessServices } from "../../support/services";
import { startUpstream, upstreamEntryToml, type Upstream } from "../../support/upstream";

const ADMIN = "admin-token-for-tests-0123456789";
let upstream: Upstream;
let services: Services;
let app: ReturnType<typeof createApp>;

beforeAll(async () => {
  upstream = await startUpstream();
  services = (await inProcessServices(`[admin]\ntoken = "${ADMIN}"\n[access]\ndeny = ["192.0.2.0/24"]\n${upstreamEntryToml(upstream)}`)).services;
  app = createApp(services);
  for (const image of ["acme/app:v1", "library/nginx:latest"]) {
    const response = await app.handle(new Request("http://127.0.0.1:5000/admin/prewarm", { method: "POST", headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" }, body: JSON.stringify({ image }) }));
    expect((await response.text()).trim().split("\n").at(-1)).toBe(JSON.stringify({ done: true, image }));
  }
  // Learnt in the background; then nginx is made private, as a repository docxy may not read anonymously is.
  const index = services.cache!.index;
  await waitFor(() => !!index.getRepositoryAccess("dockerhub", "acme/app") && !!index.getRepositoryAccess("dockerhub", "library/nginx"), "access learnt");
  index.putRepositoryAccess("dockerhub", "library/nginx", false);
}, 60_000);
afterAll(() => upstream?.stop());

const get = (path: string, token?: string, remoteAddress = "127.0.0.1") =>
  app.handle(
    new ServedRequest(`http://127.0.0.1:5000${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} }, { host: "localhost:5000", secure: false, localPort: 5000, remoteAddress }),
  );
const body = async (response: Response): Promise<any> => response.json();

test("the list shows public repositories to everyone and every repository to the admin token only", async () => {
  for (const token of [undefined, "not-the-admin-token"]) {
    const list = await body(await get("/status/cache", token));
    expect(list.enabled).toBe(true);
    expect(list.repositories.map((r: { repository: string }) => r.repository)).toEqual(["acme/app"]);
  }
  const all = await body(await get("/status/cache", ADMIN));
  expect(all.repositories.map((r: { repository: string }) => r.repository)).toEqual(["acme/app", "library/nginx"]);
  const { app: image } = upstream.images;
  const m = image.manifests[0]!;
  expect(all.repositories[0]).toEqual({
    upstream: "dockerhub",
    repository: "acme/app",
    tags: 1,
    cached_bytes: image.bytes.length + m.config.size + m.layers.reduce((n, l) => n + l.size, 0),
    last_pulled: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    pinned: false,
  });
  const first = await body(await get("/status/cache?limit=1", ADMIN));
  expect([first.repositories.length, first.next]).toEqual([1, "dockerhub/acme/app"]);
  const second = await body(await get(`/status/cache?limit=1&after=${encodeURIComponent(first.next)}`, ADMIN));
  expect(second.repositories.map((r: { repository: string }) => r.repository)).toEqual(["library/nginx"]);
  expect(second.next).toBeUndefined();
});

test("a private repository's tags answer as if not cached without the admin token", async () => {
  const hidden = await get("/status/cache/repository?upstream=dockerhub&repository=library/nginx");
  expect(hidden.status).toBe(404);
  expect((await body(hidden)).errors[0].code).toBe("NAME_UNKNOWN");
  expect((await get("/status/cache/repository?upstream=dockerhub&repository=never/pulled", ADMIN)).status).toBe(404);

  const view = await body(await get("/status/cache/repository?upstream=dockerhub&repository=library/nginx", ADMIN));
  const { nginx } = upstream.images;
  expect(view.tags.map((t: { tag: string; digest: string; media_type: string }) => [t.tag, t.digest, t.media_type])).toEqual([["latest", nginx.digest, nginx.mediaType]]);
  expect(view.tags[0].platforms.map((p: { platform: string; complete: boolean }) => `${p.platform} ${p.complete}`)).toEqual(["linux/amd64 true", "linux/arm64/v8 true"]);
  expect(view.tags[0].size).toBe(view.tags[0].cached_bytes); // pre-warm took every platform
  expect((await get("/status/cache/repository?upstream=dockerhub&repository=acme/app")).status).toBe(200);
});

test("activity per minute, bounded; bad query values are refused", async () => {
  const activity = await body(await get("/status/activity?minutes=30"));
  expect(activity.bucket_seconds).toBe(60);
  expect(Object.keys(activity.series).sort()).toEqual(["cache_bytes", "hits", "misses", "upstream_bytes", "upstream_requests"]);
  for (const series of Object.values(activity.series) as number[][]) expect(series).toHaveLength(30);
  expect(activity.series.upstream_requests.reduce((a: number, b: number) => a + b, 0)).toBeGreaterThan(0); // the pre-warm's
  expect((await get("/status/activity?minutes=100000")).status).toBe(400);
  expect((await get("/status/cache?limit=0")).status).toBe(400);
});

test("[access] applies as on the page: a denied client gets nothing", async () => {
  for (const path of ["/status/cache", "/status/activity", "/status/cache/repository?upstream=dockerhub&repository=acme/app"]) {
    expect((await get(path, ADMIN, "192.0.2.7")).status).toBe(403);
  }
});

test("without a cache the list says so", async () => {
  const bare = createApp((await inProcessServices(`[cache]\nenabled = false\n${upstreamEntryToml(upstream)}`)).services);
  expect(await body(await bare.handle(new Request("http://127.0.0.1:5000/status/cache")))).toEqual({ enabled: false, repositories: [] });
  expect((await bare.handle(new Request("http://127.0.0.1:5000/status/cache/repository?upstream=dockerhub&repository=acme/app"))).status).toBe(404);
});
