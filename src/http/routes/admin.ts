/**
 * The admin API: cache statistics, what is cached, purging, pre-warming.
 * Every route needs `Authorization: Bearer <[admin] token>`; without a token
 * configured the API does not exist (404), so it cannot be left open.
 */
import { Elysia, t } from "elysia";
import { prewarm } from "../../cache/prewarm";
import { RegistryError } from "../../oci/errors";
import { isDigest } from "../../oci/reference";
import type { Services } from "../../services";
import { bearsAdminToken } from "../admin-token";

const CacheStats = t.Object({
  enabled: t.Boolean(),
  dir: t.Optional(t.String()),
  bytes: t.Integer({ description: "Bytes of content in the cache" }),
  max_bytes: t.Optional(t.Integer()),
  entries: t.Integer({ description: "Blobs and manifests" }),
  pinned_bytes: t.Integer({ description: "Bytes of pinned images ([cache] pin), never evicted; part of bytes" }),
  pinned_entries: t.Integer({ description: "Their blobs and manifests; part of entries" }),
  fills_in_progress: t.Integer(),
  fleet_bytes: t.Optional(t.Integer({ description: "On a fleet's shared bucket: the fleet's cached bytes per its ledger in Redis, read in the background (bytes is this node's own index)" })),
});

const Kept = t.Array(
  t.Object({ digest: t.String(), reason: t.Union([t.Literal("in-use"), t.Literal("unavailable")]) }),
  { description: "Orphans not deleted: a client reads them (on a fleet's shared bucket: on any node), or the fleet's Redis did not answer" },
);

const CachedTag = t.Object({
  upstream: t.String(),
  repository: t.String(),
  tag: t.String(),
  digest: t.String(),
  media_type: t.String(),
  fetched_at: t.String({ format: "date-time" }),
});

const PrewarmRequest = t.Object({
  image: t.String({ description: "Image reference, e.g. docker.io/library/alpine:3.20 or ghcr.io/org/app@sha256:…", minLength: 1, maxLength: 512 }),
  platforms: t.Optional(t.Array(t.String({ pattern: "^[a-z0-9]+/[a-z0-9]+(/[a-z0-9]+)?$" }), { description: "e.g. linux/amd64; all when absent" })),
});

const PrewarmRun = t.Object({
  id: t.Integer(),
  source: t.String({ description: 'The list file, or "admin" for a posted list' }),
  started: t.String({ format: "date-time" }),
  finished: t.Optional(t.String({ format: "date-time" })),
  result: t.Optional(t.Union([t.Literal("ok"), t.Literal("partial"), t.Literal("failed")])),
  current: t.Optional(t.String({ description: "The line being pulled now" })),
  images: t.Array(
    t.Object({ line: t.Integer(), image: t.String(), ok: t.Boolean(), items: t.Integer(), bytes: t.Integer(), error: t.Optional(t.String()) }),
  ),
  problems: t.Array(t.Object({ line: t.Integer(), text: t.String(), error: t.String() }), { description: "Lines that do not parse, skipped (line 0: the file itself)" }),
  bytes: t.Integer(),
});

const PrewarmStatus = t.Object({
  file: t.Optional(t.String()),
  interval_seconds: t.Optional(t.Number({ description: "0: only at start" })),
  running: t.Optional(PrewarmRun),
  last: t.Optional(PrewarmRun),
  runs: t.Object({ ok: t.Integer(), partial: t.Integer(), failed: t.Integer() }),
  last_success: t.Optional(t.Number({ description: "Seconds since the epoch" })),
});

export function adminRoutes(services: Services) {
  const token = services.config.admin.token;
  const authorized = ({ request }: { request: Request }) => {
    if (!token) throw new RegistryError("NOT_FOUND", "the admin API is disabled: set [admin] token");
    if (!bearsAdminToken(request, token)) {
      throw new RegistryError("UNAUTHORIZED", "admin token required", { headers: { "www-authenticate": 'Bearer realm="docxy-admin"' } });
    }
  };
  const schedule = () => {
    if (!services.prewarm) throw new RegistryError("UNSUPPORTED", "the cache is disabled", { status: 409 });
    return services.prewarm;
  };
  const cache = () => {
    if (!services.cache) throw new RegistryError("UNSUPPORTED", "the cache is disabled", { status: 409 });
    return services.cache;
  };

  return new Elysia({ name: "docxy/admin", prefix: "/admin", detail: { tags: ["admin"], security: [{ bearer: [] }] } })
    .onBeforeHandle(authorized)
    .get(
      "/cache",
      () => {
        const c = services.cache;
        if (!c) return { enabled: false, bytes: 0, entries: 0, pinned_bytes: 0, pinned_entries: 0, fills_in_progress: 0 };
        const fleetBytes = c.fleetBytes();
        const pinned = c.index.pinned();
        return {
          enabled: true,
          dir: c.dir,
          bytes: c.index.totalBytes(),
          max_bytes: c.maxBytes,
          entries: c.index.entries(),
          pinned_bytes: pinned.bytes,
          pinned_entries: pinned.entries,
          fills_in_progress: c.blobs.fillsInProgress,
          ...(fleetBytes === undefined ? {} : { fleet_bytes: fleetBytes }),
        };
      },
      { response: CacheStats, detail: { summary: "Cache size and activity" } },
    )
    .get(
      "/cache/tags",
      ({ query }) =>
        cache()
          .index.tags(query.limit ?? 100)
          .map((r) => ({ upstream: r.upstream, repository: r.repository, tag: r.tag, digest: r.digest, media_type: r.mediaType, fetched_at: new Date(r.fetchedAt).toISOString() })),
      {
        query: t.Object({ limit: t.Optional(t.Integer({ minimum: 1, maximum: 10_000 })) }),
        response: t.Array(CachedTag),
        detail: { summary: "Cached tags, most recently fetched first" },
      },
    )
    .delete(
      "/cache/blobs/:digest",
      async ({ params }) => {
        if (!isDigest(params.digest)) throw new RegistryError("DIGEST_INVALID", `invalid digest: ${params.digest}`);
        const result = await cache().purge(params.digest);
        if (result === "in-use") {
          throw new RegistryError("DENIED", `${params.digest} is being read by a client on a node of the fleet: not purged; purge it again once the read ends`, { status: 409 });
        }
        if (result === "unavailable") {
          throw new RegistryError("UNAVAILABLE", `the fleet's Redis does not answer, so no reader of ${params.digest} can be ruled out: not purged`);
        }
        return { removed: result === "removed" ? [params.digest] : [] };
      },
      {
        params: t.Object({ digest: t.String() }),
        response: t.Object({ removed: t.Array(t.String()) }),
        detail: {
          summary: "Purge one blob or manifest",
          description: "On a fleet's shared bucket: 409 (DENIED) while a client on any node reads it, 503 while the fleet's Redis does not answer; nothing is deleted then",
        },
      },
    )
    .delete(
      "/cache/repositories",
      async ({ query }) => {
        const c = cache();
        const upstream = services.upstreams.byName(query.upstream);
        if (!upstream) throw new RegistryError("NOT_FOUND", `no upstream named ${JSON.stringify(query.upstream)}`);
        const orphans = c.index.removeRepository(upstream.name, query.repository);
        const kept: { digest: string; reason: "in-use" | "unavailable" }[] = [];
        for (const digest of orphans) {
          if (c.blobs.inUse(digest)) {
            kept.push({ digest, reason: "in-use" }); // read here: left in place, as eviction does
            continue;
          }
          const result = await c.purge(digest);
          if (result === "in-use" || result === "unavailable") kept.push({ digest, reason: result });
        }
        const removed = kept.length === 0 ? orphans : orphans.filter((digest) => !kept.some((k) => k.digest === digest));
        return { removed, ...(kept.length === 0 ? {} : { kept }) };
      },
      {
        query: t.Object({ upstream: t.String({ description: "Upstream name, e.g. dockerhub" }), repository: t.String({ description: "As the upstream names it, e.g. library/alpine" }) }),
        response: t.Object({ removed: t.Array(t.String()), kept: t.Optional(Kept) }),
        detail: { summary: "Purge a repository: its tags, and content no other repository uses" },
      },
    )
    .post("/reload", () => services.reload(), {
      response: t.Record(t.String(), t.String()),
      detail: { summary: "Re-read the TLS certificate now (as SIGHUP does); policy and user files reload by themselves" },
    })
    .post(
      "/prewarm",
      ({ body }) => {
        const steps = prewarm(services.reads, services.upstreams, body.image, body.platforms);
        const encoder = new TextEncoder();
        // Progress as NDJSON: one line per manifest or blob, then a summary (or an error).
        const stream = new ReadableStream<Uint8Array>({
          async pull(controller) {
            try {
              const next = await steps.next();
              if (next.done) {
                controller.enqueue(encoder.encode(`${JSON.stringify({ done: true, image: body.image })}\n`));
                controller.close();
              } else controller.enqueue(encoder.encode(`${JSON.stringify(next.value)}\n`));
            } catch (error) {
              controller.enqueue(encoder.encode(`${JSON.stringify({ done: false, error: (error as Error).message })}\n`));
              controller.close();
            }
          },
        });
        return new Response(stream, { headers: { "content-type": "application/x-ndjson" } });
      },
      { body: PrewarmRequest, detail: { summary: "Pull an image into the cache; progress as NDJSON lines" } },
    )
    .get("/prewarm/status", () => schedule().status(), {
      response: PrewarmStatus,
      detail: { summary: "The pre-warm list: the run going now, the last run's account, runs so far" },
    })
    .get(
      "/prewarm/runs/:id",
      ({ params }) => {
        const run = schedule().find(params.id);
        if (!run) throw new RegistryError("NOT_FOUND", `no pre-warm run ${params.id} among the going and the last 16`);
        return run;
      },
      { params: t.Object({ id: t.Integer({ minimum: 1 }) }), response: PrewarmRun, detail: { summary: "One pre-warm run by the id POST /admin/prewarm/run returned" } },
    )
    .post(
      "/prewarm/run",
      ({ body, set }) => {
        const s = schedule();
        if (body?.list === undefined && !services.config.prewarm.file) {
          throw new RegistryError("UNSUPPORTED", "no [prewarm] file configured: post a list ({\"list\": \"alpine:3.20\\n…\"})", { status: 409 });
        }
        const run = s.run(body?.list);
        // One run at a time: the asker sees the one going and may ask again once it finished.
        if (!run) throw new RegistryError("DENIED", `a pre-warm run is going (${s.status().running?.source}); poll /admin/prewarm/status`, { status: 409 });
        set.status = 202;
        return run;
      },
      {
        body: t.Optional(t.Object({ list: t.Optional(t.String({ maxLength: 1_000_000, description: "A list in the file's syntax; the [prewarm] file when absent" })) })),
        response: { 202: PrewarmRun },
        detail: {
          summary: "Start a pre-warm run now (the [prewarm] file, or a posted list); 409 while one is going",
          description: "Returns as the run starts; its progress and account are at /admin/prewarm/status",
        },
      },
    );
}
