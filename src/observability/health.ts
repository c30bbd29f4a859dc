/**
 * Upstream reachability for `/health`. Probes run with the short ping budget
 * and their results are reused for a few seconds, so `/health` stays cheap
 * under a load balancer's polling and prompt when an upstream hangs.
 */
import { discard, type UpstreamClient } from "../upstream/client";
import type { Upstream, UpstreamTable } from "../upstream/table";

export interface UpstreamHealth {
  name: string;
  url: string;
  reachable: boolean;
  /** HTTP status of the upstream's /v2/ (401 counts as reachable: it is the normal anonymous answer). */
  status?: number;
  latency_ms?: number;
  error?: string;
  checked_at: string;
}

export interface HealthReport {
  status: "ok" | "degraded";
  version: string;
  uptime_seconds: number;
  upstreams: UpstreamHealth[];
}

const FRESH_MS = 10_000;

export class HealthMonitor {
  private readonly started = Date.now();
  private readonly results = new Map<string, { at: number; health: Promise<UpstreamHealth> }>();

  constructor(
    private readonly table: UpstreamTable,
    private readonly client: UpstreamClient,
    private readonly version: string,
    private readonly probeTimeoutMs: number,
  ) {}

  async report(): Promise<HealthReport> {
    const upstreams = await Promise.all(this.table.all.map((u) => this.check(u)));
    return {
      status: upstreams.every((u) => u.reachable) ? "ok" : "degraded",
      version: this.version,
      uptime_seconds: Math.round((Date.now() - this.started) / 1000),
      upstreams,
    };
  }

  private check(upstream: Upstream): Promise<UpstreamHealth> {
    const cached = this.results.get(upstream.name);
    if (cached && Date.now() - cached.at < FRESH_MS) return cached.health;
    const health = this.probe(upstream);
    this.results.set(upstream.name, { at: Date.now(), health });
    return health;
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
      });
      await discard(response);
      return {
        ...base,
        reachable: response.status < 500,
        status: response.status,
        latency_ms: Math.round(performance.now() - begin),
        checked_at: new Date().toISOString(),
      };
    } catch (error) {
      return { ...base, reachable: false, error: (error as Error).message, checked_at: new Date().toISOString() };
    }
  }
}
