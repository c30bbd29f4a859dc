/**
 * Liveness, upstream reachability and the cache's storage state, for people, load balancers and
 * connectivity probes. These are the routes the OpenAPI page documents.
 *
 * Tested in process through the whole app: tests/http/app.test.ts.
 */
import { Elysia, t } from "elysia";
import type { Services } from "../../services";

const UpstreamHealth = t.Object({
  name: t.String(),
  url: t.String(),
  reachable: t.Boolean({ description: "answered below 500 (a 429 counts as reachable; see state)" }),
  state: t.Union([t.Literal("up"), t.Literal("rate-limited"), t.Literal("failing"), t.Literal("unreachable")], {
    description: "up: answers as a registry; rate-limited: 429; failing: 5xx or another unexpected status; unreachable: no answer in time",
  }),
  reason: t.Optional(t.String({ description: 'why it is not up, e.g. "answered 429"' })),
  retry_after: t.Optional(t.String({ description: "the upstream's Retry-After, when it sent one" })),
  status: t.Optional(t.Integer({ description: "HTTP status of the upstream's /v2/ (401 is the normal anonymous answer)" })),
  latency_ms: t.Optional(t.Number()),
  error: t.Optional(t.String()),
  checked_at: t.String({ format: "date-time" }),
});

const CacheHealth = t.Object({
  storage: t.Union([t.Literal("filesystem"), t.Literal("s3")]),
  state: t.Union([t.Literal("up"), t.Literal("failing")], {
    description: "as the last operation on the store left it; failing: pulls get their bytes from the upstream and nothing is stored",
  }),
  reason: t.Optional(t.String({ description: "the last failure, e.g. which object or directory and why" })),
  pinned_bytes: t.Optional(t.Integer({ description: "bytes of pinned images ([cache] pin) in the cache, never evicted" })),
  pinned_entries: t.Optional(t.Integer({ description: "their blobs and manifests" })),
});

const HealthReport = t.Object({
  status: t.Union([t.Literal("ok"), t.Literal("degraded")], {
    description: "degraded: some upstream is not up (rate-limited, failing or unreachable), the cache's storage is failing, or a fleet node lost its Redis",
  }),
  version: t.String(),
  uptime_seconds: t.Integer(),
  upstreams: t.Array(UpstreamHealth),
  cache: t.Optional(CacheHealth),
  fleet: t.Optional(
    t.Object({
      coordination: t.Union([t.Literal("shared"), t.Literal("local")], {
        description: "shared: fills are coordinated through the fleet's Redis; local: Redis is unavailable and this node coordinates alone (degraded)",
      }),
    }),
  ),
});

export function healthRoutes(services: Services) {
  return new Elysia({ name: "docxy/health" })
    .get("/health", () => services.health.report(), {
      response: HealthReport,
      detail: { summary: "Proxy health and upstream reachability", tags: ["health"] },
    })
    .head("/health", () => new Response(null, { headers: { "content-type": "application/json" } }), {
      detail: { hide: true },
    })
    .get("/generate_204", () => new Response(null, { status: 204 }), {
      detail: { summary: "Connectivity probe: always 204 No Content", tags: ["health"] },
    })
    .head("/generate_204", () => new Response(null, { status: 204 }), { detail: { hide: true } });
}
