/**
 * Upstream reachability and the cache's storage state for `/health`. Probes run with the short ping budget
 * and their results are reused for a few seconds, so `/health` stays cheap
 * under a load balancer's polling and prompt when an upstream hangs.
 */
import type { StorageStatus } from "../cache/watched-storage";
import { discard, type UpstreamClient } from "../upstream/client";
import type { Upstream, UpstreamTable } from "../upstream/table";

/**
 * up: the version check answered as a registry does (2xx, or 401 with a
 * challenge); rate-limited: it answered 429; failing: any other answer (a
 * 5xx outage, an unexpected status); unreachable: no answer (refused, closed,
 * or not within the ping budget). The cache keeps serving what it holds in
 * every state but up (README "Cache").
 */
export type UpstreamState = "up" | "rate-limited" | "failing" | "unreachable";

export interface UpstreamHealth {
  name: string;
  url: string;
  /** As before `state` existed: answered below 500 (a 429 counts as reachable). */
  reachable: boolean;
  state: UpstreamState;
  /** Why the state is not up, e.g. "answered 429" or "did not answer within 5s". */
  reason?: string;
  /** HTTP status of the upstream's /v2/ (401 counts as up: it is the normal anonymous answer). */
  status?: number;
  /** The upstream's Retry-After, when it answered 429 or 503 with one. */
  retry_after?: string;
  latency_ms?: number;
  error?: string;
  checked_at: string;
}

/** The cache's blob storage as its last operation left it (cache/watched-storage.ts). */
export interface CacheHealth {
  storage: StorageStatus["storage"];
  state: StorageStatus["state"];
  reason?: string;
  /** Stored bytes and entries of pinned images ([cache] pin), never evicted. */
  pinned_bytes?: number;
  pinned_entries?: number;
}

export interface HealthReport {
  status: "ok" | "degraded";
  version: string;
  uptime_seconds: number;
  upstreams: UpstreamHealth[];
  /** Absent when the cache is off. */
  cache?: CacheHealth;
  /** In a fleet: shared while fills are coordinated through Redis, local while this node coordinates alone. */
  fleet?: { coordination: "shared" | "local" };
}

const FRESH_MS = 10_000;

export class HealthMonitor {
  private readonly started = Date.now();
  private readonly results = new Map<string, { at: number; health: Promise<UpstreamHealth>; last?: UpstreamHealth }>();

  constructor(
    private readonly table: UpstreamTable,
    private readonly client: UpstreamClient,
    private readonly version: string,
    private readonly probeTimeoutMs: number,
    /** Read at each report: no probe of its own, the pulls exercise the store. */
    private readonly storage: () => StorageStatus | undefined = () => undefined,
    /** How a fleet node coordinates fills now; absent on a single node. */
    private readonly fleetCoordination?: () => "shared" | "local",
    /** Pinned content's figures, from the cache index (undefined without a usable cache). */
    private readonly pinned: () => { bytes: number; entries: number } | undefined = () => undefined,
  ) {}

  async report(): Promise<HealthReport> {
    const upstreams = await this.upstreams();
    const storage = this.storage();
    const pinned = this.pinned();
    const cache = storage && {
      storage: storage.storage,
      state: storage.state,
      ...(storage.reason === undefined ? {} : { reason: storage.reason }),
      ...(pinned ? { pinned_bytes: pinned.bytes, pinned_entries: pinned.entries } : {}),
    };
    const coordination = this.fleetCoordination?.();
    return {
      // A fleet node coordinating alone still serves, but may fetch what another node fetches too.
      status: upstreams.every((u) => u.state === "up") && cache?.state !== "failing" && coordination !== "local" ? "ok" : "degraded",
      version: this.version,
      uptime_seconds: Math.round((Date.now() - this.started) / 1000),
      upstreams,
      ...(cache ? { cache } : {}),
      ...(coordination && { fleet: { coordination } }),
    };
  }

  /** Each upstream's state, from a probe at most FRESH_MS old. */
  upstreams(): Promise<UpstreamHealth[]> {
    return Promise.all(this.table.all.map((u) => this.check(u)));
  }

  /**
   * What the last finished probes of `/health` said, without probing (the metrics): a scrape must
   * not wait for the ping budget on an upstream that does not answer, nor send probes of its own.
   */
  known(): UpstreamHealth[] {
    return this.table.all.flatMap((u) => this.results.get(u.name)?.last ?? []);
  }

  private check(upstream: Upstream): Promise<UpstreamHealth> {
    const cached = this.results.get(upstream.name);
    if (cached && Date.now() - cached.at < FRESH_MS) return cached.health;
    const entry: { at: number; health: Promise<UpstreamHealth>; last?: UpstreamHealth } = { at: Date.now(), health: this.probe(upstream), last: cached?.last };
    void entry.health.then((health) => (entry.last = health));
    this.results.set(upstream.name, entry);
    return entry.health;
  }

  private async probe(upstream: Upstream): Promise<UpstreamHealth> {
    const begin = performance.now();
    const base = { name: upstream.name, url: upstream.url };
    try {
      const { response } = await this.client.send({
        method: "GET",
        url: `${upstream.url}/v2/`,
        headers: new Headers(),
        headerTimeoutMs: this.probeTimeoutMs,
        proxy: upstream.proxy,
      });
      await discard(response);
      const status = response.status;
      const state: UpstreamState = status < 300 || status === 401 ? "up" : status === 429 ? "rate-limited" : "failing";
      const retryAfter = response.headers.get("retry-after");
      return {
        ...base,
        reachable: status < 500,
        state,
        ...(state === "up" ? {} : { reason: `answered ${status}` }),
        status,
        ...(retryAfter !== null && state !== "up" ? { retry_after: retryAfter } : {}),
        latency_ms: Math.round(performance.now() - begin),
        checked_at: new Date().toISOString(),
      };
    } catch (error) {
      const message = (error as Error).message;
      return { ...base, reachable: false, state: "unreachable", reason: message, error: message, checked_at: new Date().toISOString() };
    }
  }
}
