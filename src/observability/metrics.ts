/**
 * `src/observability/`: what docxy tells operators — logs, the access log,
 * metrics, upstream health, recent pulls.
 *
 * Every Prometheus metric docxy exposes, declared in one place with its help
 * text (distribution keeps its proxy metrics the same way, proxymetrics.go).
 * prom-client does the text format; values that live elsewhere (cache size,
 * fills, account quota) are read at scrape time through `observe` callbacks,
 * so nothing is kept twice.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { ActivityHistory } from "./activity-history";

export interface Observed {
  cacheBytes?: () => number;
  cacheEntries?: () => number;
  /** Stored bytes and entries of pinned images ([cache] pin), part of cacheBytes and cacheEntries. */
  cachePinned?: () => { bytes: number; entries: number };
  /** The scheduled pre-warm's runs so far and its last success (cache/prewarm-schedule.ts). */
  prewarm?: () => { runs: Readonly<Record<string, number>>; last_success?: number; running?: unknown } | undefined;
  /** On a fleet's shared bucket: the fleet's cached bytes per its ledger, as last read in the background (never waited for). */
  fleetCacheBytes?: () => number | undefined;
  fillsInProgress?: () => number;
  /** Blob fills the cache's fill limits refused so far, by reason (client, fills, bytes). */
  fillsRefused?: () => Readonly<Record<string, number>>;
  /** Operations on the cache's blob storage that failed since start (cache/watched-storage.ts). */
  storageFailures?: () => number;
  /** Each upstream's state as the last /health probe found it (observability/health.ts), never waited for. */
  upstreams?: () => { name: string; state: string; reason?: string }[];
  /** Docker Hub's `ratelimit-remaining` of each configured account (undefined until seen). */
  accounts?: () => { upstream: string; account: string; remaining: number | undefined }[];
  /** In a fleet: whether fills are coordinated through Redis (shared) or, Redis being unavailable, on this node alone. */
  fleetCoordination?: () => "shared" | "local" | undefined;
}

export class Metrics {
  readonly registry = new Registry();
  /** The last hours per minute, for the status page's charts; counted where the counters below are. */
  readonly history = new ActivityHistory();

  readonly requests = new Counter({
    name: "docxy_http_requests_total",
    help: "Requests answered, by route, registry and status",
    labelNames: ["route", "registry", "status"] as const,
    registers: [this.registry],
  });

  readonly bytes = new Counter({
    name: "docxy_http_response_bytes_total",
    help: "Body bytes sent to clients, by where they came from (cache: HIT/STALE; upstream: MISS/COALESCED/pass-through)",
    labelNames: ["source"] as const,
    registers: [this.registry],
  });

  readonly cacheResults = new Counter({
    name: "docxy_cache_requests_total",
    help: "Cacheable requests by kind (blob, manifest) and result (HIT, MISS, COALESCED, REVALIDATED, STALE)",
    labelNames: ["kind", "result"] as const,
    registers: [this.registry],
  });

  readonly upstreamLatency = new Histogram({
    name: "docxy_upstream_request_duration_seconds",
    help: "Time until upstream response headers, by upstream host, method and status",
    labelNames: ["host", "method", "status"] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  readonly upstreamFailures = new Counter({
    name: "docxy_upstream_failures_total",
    help: "Upstream requests that got no answer, by host and reason (unreachable, timeout)",
    labelNames: ["host", "reason"] as const,
    registers: [this.registry],
  });

  readonly upstreamSources = new Counter({
    name: "docxy_upstream_pull_answers_total",
    help: "Pull-path requests (manifests, blobs, tags) docxy sent upstream, by upstream and the host whose answer was used: the upstream's own, or a fallback's",
    labelNames: ["upstream", "source"] as const,
    registers: [this.registry],
  });

  readonly fallbacks = new Counter({
    name: "docxy_upstream_fallbacks_total",
    help: "Fallbacks asked because their upstream was in trouble, by upstream, fallback host and outcome (served, failed)",
    labelNames: ["upstream", "source", "outcome"] as const,
    registers: [this.registry],
  });

  readonly fallbacksFirst = new Gauge({
    name: "docxy_upstream_fallbacks_first",
    help: "1 while an upstream is asked after its fallbacks, for a while after its trouble (429, 5xx, unreachable); 0 once it answers again",
    labelNames: ["upstream"] as const,
    registers: [this.registry],
  });

  readonly connections = new Gauge({
    name: "docxy_active_connections",
    help: "Client connections open now",
    registers: [this.registry],
  });

  constructor(observed: Observed = {}) {
    const gauge = (name: string, help: string, read: (() => number) | undefined) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          if (read) this.set(read());
        },
      });
    gauge("docxy_cache_size_bytes", "Bytes of content in the cache", observed.cacheBytes);
    gauge("docxy_cache_entries", "Blobs and manifests in the cache", observed.cacheEntries);
    gauge("docxy_cache_pinned_bytes", "Bytes of pinned images ([cache] pin) in the cache, never evicted; part of docxy_cache_size_bytes", () => observed.cachePinned?.().bytes ?? 0);
    gauge("docxy_cache_pinned_entries", "Blobs and manifests of pinned images in the cache; part of docxy_cache_entries", () => observed.cachePinned?.().entries ?? 0);
    new Counter({
      name: "docxy_prewarm_runs_total",
      help: "Pre-warm list runs finished, by result (ok: every image; partial: some images failed or lines were bad; failed: none)",
      labelNames: ["result"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [result, count] of Object.entries(observed.prewarm?.()?.runs ?? {})) this.inc({ result }, count);
      },
    });
    new Gauge({
      name: "docxy_prewarm_last_success_timestamp_seconds",
      help: "When the last pre-warm run whose every image succeeded finished (absent until one did)",
      registers: [this.registry],
      collect() {
        const at = observed.prewarm?.()?.last_success;
        if (at === undefined) this.remove({});
        else this.set(at);
      },
    });
    gauge("docxy_prewarm_running", "1 while a pre-warm list run is going", () => (observed.prewarm?.()?.running ? 1 : 0));
    new Gauge({
      name: "docxy_fleet_cache_size_bytes",
      help: "On a fleet's shared bucket: bytes of content in the bucket as the fleet's ledger in Redis counts them, read in the background (docxy_cache_size_bytes is this node's own index)",
      registers: [this.registry],
      collect() {
        // No sample at all off a fleet's shared bucket, or before Redis answered once (a 0 would read as empty).
        const bytes = observed.fleetCacheBytes?.();
        if (bytes === undefined) this.remove({});
        else this.set(bytes);
      },
    });
    gauge("docxy_cache_fills_in_progress", "Blob downloads being filled into the cache now", observed.fillsInProgress);
    new Counter({
      name: "docxy_cache_fills_refused_total",
      help: "Blob fills refused by the cache's fill limits, by reason (client: per address, fills: in all, bytes: temp bytes in flight)",
      labelNames: ["reason"] as const,
      registers: [this.registry],
      collect() {
        // The counts live in the cache (cache/fill-limits.ts); a counter still, as they only grow.
        this.reset();
        for (const [reason, count] of Object.entries(observed.fillsRefused?.() ?? {})) this.inc({ reason }, count);
      },
    });
    new Counter({
      name: "docxy_cache_storage_failures_total",
      help: "Operations on the cache's blob storage (a bucket or the cache directory) that failed; each cost a client a download from the upstream, not its pull",
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(observed.storageFailures?.() ?? 0);
      },
    });
    new Gauge({
      name: "docxy_fleet_coordination",
      help: "In a fleet, 1 for how fills are coordinated now: shared (through Redis) or local (Redis unavailable, this node alone)",
      labelNames: ["state"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        const state = observed.fleetCoordination?.();
        if (state) for (const each of ["shared", "local"] as const) this.set({ state: each }, each === state ? 1 : 0);
      },
    });
    new Gauge({
      name: "docxy_upstream_state",
      help: "1 for each upstream's state (up, rate-limited, failing, unreachable) as the last /health probe found it (a scrape does not probe), with the reason when it is not up",
      labelNames: ["upstream", "state", "reason"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const u of observed.upstreams?.() ?? []) this.set({ upstream: u.name, state: u.state, reason: u.reason ?? "" }, 1);
      },
    });
    new Gauge({
      name: "docxy_upstream_ratelimit_remaining",
      help: "Docker Hub's ratelimit-remaining last seen for each configured upstream account",
      labelNames: ["upstream", "account"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const a of observed.accounts?.() ?? []) {
          if (a.remaining !== undefined) this.set({ upstream: a.upstream, account: a.account }, a.remaining);
        }
      },
    });
  }

  /** One exchange, as the access log sees it. */
  exchange(route: string, registry: string | undefined, status: number, bytes: number, cache: string | undefined): void {
    this.requests.inc({ route, registry: registry ?? "", status: String(status) });
    const fromCache = cache === "HIT" || cache === "STALE";
    this.bytes.inc({ source: fromCache ? "cache" : "upstream" }, bytes);
    this.history.add(fromCache ? "cache_bytes" : "upstream_bytes", bytes);
    if (cache && (route === "blobs" || route === "manifests")) {
      this.cacheResults.inc({ kind: route === "blobs" ? "blob" : "manifest", result: cache });
      // As the status page counts "served from cache": a revalidated tag is served from the store.
      this.history.add(fromCache || cache === "REVALIDATED" ? "hits" : "misses");
    }
  }

  /** A request docxy made upstream that got response headers. */
  upstreamAnswered(host: string, method: string, status: number, seconds: number): void {
    this.upstreamLatency.observe({ host, method, status: String(status) }, seconds);
    this.history.add("upstream_requests");
  }

  /** A request docxy made upstream that got no answer. */
  upstreamFailed(host: string, reason: string): void {
    this.upstreamFailures.inc({ host, reason });
    this.history.add("upstream_requests");
  }
}

/** The route family of a path, a bounded label (never the repository name). */
export function routeOf(path: string): string {
  if (path === "/v2/" || path === "/v2") return "v2";
  const kind = /\/(manifests|blobs|referrers)\/[^/]+$|\/(tags)\/list$/.exec(path);
  if (path.startsWith("/v2/")) return kind ? (kind[1] ?? kind[2]!) : "v2_other";
  if (path.startsWith("/auth/")) return "token";
  if (path === "/health" || path === "/generate_204") return "health";
  if (path === "/metrics") return "metrics";
  if (path.startsWith("/admin")) return "admin";
  return "other";
}
