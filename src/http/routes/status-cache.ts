/**
 * The JSON behind the status page's cache browser and charts: cached
 * repositories a page at a time, one repository's tags and platforms, and
 * the last hours of activity.
 *
 * The same rule as the page itself (status-page.ts): it obeys `[access]`,
 * and without the `[admin] token` only repositories known to be public are
 * listed or shown, so a private image pulled with a client's own
 * credentials stays hidden. Purging is the admin API's (admin.ts).
 */
import { Elysia, t } from "elysia";
import { nameMatches, parseImageEntry } from "../../cache/image-list";
import { CacheBrowser } from "../../cache/cache-browser";
import { RegistryError } from "../../oci/errors";
import type { Services } from "../../services";
import { bearsAdminToken } from "../admin-token";
import { admit } from "../guard";
import { contextOf } from "../request-context";

const pinned = t.Boolean({ description: "Kept from eviction by [cache] pin" });
const time = (description: string) => t.Union([t.String({ format: "date-time" }), t.Null()], { description });

const RepositorySummary = t.Object({
  upstream: t.String({ description: "Upstream name, as the admin API's purge takes it" }),
  repository: t.String({ description: "As the upstream names it, e.g. library/alpine" }),
  tags: t.Integer({ description: "Cached tags" }),
  cached_bytes: t.Integer({ description: "Bytes of content cached for this repository (content shared with others counts here too)" }),
  last_pulled: time("Latest use of its cached content; null when none is stored"),
  pinned,
});

const RepositoryList = t.Object({
  enabled: t.Boolean({ description: "Whether the cache is on" }),
  repositories: t.Array(RepositorySummary),
  next: t.Optional(t.String({ description: "Pass as `after` for the next page; absent on the last" })),
});

const Sizes = {
  size: t.Integer({ description: "Bytes of the image: manifests, configs and layers, each counted once" }),
  cached_bytes: t.Integer({ description: "The part of size stored in the cache now" }),
};

const TagView = t.Object({
  tag: t.String(),
  digest: t.String(),
  media_type: t.String(),
  fetched_at: t.String({ format: "date-time", description: "When the upstream was last asked what the tag points to" }),
  last_pulled: t.String({ format: "date-time" }),
  ...Sizes,
  pinned,
  platforms: t.Array(
    t.Object({
      platform: t.String({ description: "os/architecture[/variant]; unknown/unknown for attestations" }),
      digest: t.String(),
      ...Sizes,
      complete: t.Boolean({ description: "False when this platform's manifest is not cached: its layers are not counted" }),
    }),
    { description: "The index's platforms; empty for a single-platform image" },
  ),
});

const RepositoryView = t.Object({
  upstream: t.String(),
  repository: t.String(),
  pinned,
  tags: t.Array(TagView),
  more: t.Boolean({ description: "More tags are cached than `limit` returned" }),
});

const Activity = t.Object({
  bucket_seconds: t.Integer(),
  start: t.Integer({ description: "Start of the first bucket, milliseconds since the epoch" }),
  series: t.Object(
    {
      hits: t.Array(t.Number(), { description: "Manifests and blobs served from the cache (HIT, STALE, REVALIDATED)" }),
      misses: t.Array(t.Number(), { description: "Manifests and blobs fetched upstream (MISS, COALESCED)" }),
      cache_bytes: t.Array(t.Number(), { description: "Bytes served from the cache" }),
      upstream_bytes: t.Array(t.Number(), { description: "Bytes served from the upstream" }),
      upstream_requests: t.Array(t.Number(), { description: "Requests docxy made upstream, answered or not" }),
    },
    { description: "One value per bucket, oldest first" },
  ),
});

const iso = (ms: number) => new Date(ms).toISOString();

export function statusCacheRoutes(services: Services) {
  const pins = services.config.cache.pin.map(parseImageEntry); // valid: checked at load
  const pinned = (upstream: string, repository: string) => {
    const registry = services.upstreams.byName(upstream)?.registry;
    return registry !== undefined && pins.some((pin) => nameMatches(pin, registry, repository));
  };
  const browser = services.cache && new CacheBrowser(services.cache.index, services.cache.storage, pinned);
  /** Admits the request as the page does; true for the bearer of the admin token. */
  const operator = async (request: Request) => {
    await admit(services.guards, request, contextOf(request));
    return bearsAdminToken(request, services.config.admin.token);
  };
  const isPublic = (upstream: string, repository: string) => services.cache?.index.getRepositoryAccess(upstream, repository)?.public === true;

  return new Elysia({ name: "docxy/status-cache", prefix: "/status", detail: { tags: ["status"] } })
    .get(
      "/cache",
      async ({ request, query }) => {
        const publicOnly = !(await operator(request));
        if (!browser) return { enabled: false, repositories: [] };
        const page = browser.repositories({ after: query.after, limit: query.limit ?? 50, contains: query.contains, publicOnly });
        return {
          enabled: true,
          repositories: page.repositories.map((r) => ({
            upstream: r.upstream,
            repository: r.repository,
            tags: r.tags,
            cached_bytes: r.bytes,
            last_pulled: r.lastAccess ? iso(r.lastAccess) : null,
            pinned: r.pinned,
          })),
          ...(page.next ? { next: page.next } : {}),
        };
      },
      {
        query: t.Object({
          after: t.Optional(t.String({ description: "The `next` of the previous page", maxLength: 1024 })),
          limit: t.Optional(t.Integer({ minimum: 1, maximum: 500, description: "Default 50" })),
          contains: t.Optional(t.String({ description: "Only repositories whose name contains this", maxLength: 256 })),
        }),
        response: RepositoryList,
        detail: { summary: "Cached repositories, by upstream then name, a page at a time (without the admin token: public ones only)" },
      },
    )
    .get(
      "/cache/repository",
      async ({ request, query }) => {
        const allowed = (await operator(request)) || isPublic(query.upstream, query.repository);
        const view = allowed && browser ? await browser.repository(query.upstream, query.repository, query.limit ?? 100) : undefined;
        // Not cached and not shown are the same answer: a private repository's existence stays hidden.
        if (!view || view.tags.length === 0) throw new RegistryError("NAME_UNKNOWN", "no cached tags of this repository");
        return {
          upstream: view.upstream,
          repository: view.repository,
          pinned: view.pinned,
          more: view.more,
          tags: view.tags.map((tag) => ({
            tag: tag.tag,
            digest: tag.digest,
            media_type: tag.mediaType,
            fetched_at: iso(tag.fetchedAt),
            last_pulled: iso(tag.lastPulled),
            size: tag.size,
            cached_bytes: tag.cachedBytes,
            pinned: tag.pinned,
            platforms: tag.platforms.map((p) => ({ platform: p.platform, digest: p.digest, size: p.size, cached_bytes: p.cachedBytes, complete: p.complete })),
          })),
        };
      },
      {
        query: t.Object({
          upstream: t.String({ description: "Upstream name, e.g. dockerhub" }),
          repository: t.String({ description: "As the upstream names it, e.g. library/alpine" }),
          limit: t.Optional(t.Integer({ minimum: 1, maximum: 1000, description: "Tags at most, by name; default 100" })),
        }),
        response: RepositoryView,
        detail: { summary: "One cached repository: its tags, their platforms, sizes and last pulls" },
      },
    )
    .get(
      "/activity",
      async ({ request, query }) => {
        await operator(request);
        return services.metrics.history.snapshot(query.minutes ?? 6 * 60);
      },
      {
        query: t.Object({ minutes: t.Optional(t.Integer({ minimum: 1, maximum: 24 * 60, description: "Default 360 (6 h)" })) }),
        response: Activity,
        detail: { summary: "Cache hits and misses, bytes served and upstream requests per minute over the last hours" },
      },
    );
}
