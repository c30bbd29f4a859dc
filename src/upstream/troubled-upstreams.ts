/**
 * Which upstreams were in trouble a moment ago, so that their fallbacks are
 * asked first (upstream/fallbacks.ts): a circuit breaker. Without it, during
 * a long outage every request paid the upstream's failure before its
 * fallback — nothing for a refused connection, `header_timeout` (30 s) for
 * a hang, so a pull of ten layers took minutes.
 *
 * After a 429, a 5xx or an outage the upstream is skipped for COOLDOWN_MS,
 * or for as long as a 429's `Retry-After` asks (within MAX_COOLDOWN_MS).
 * Then one request asks it again (the others keep to the fallbacks while it
 * does): an answer that is not trouble ends it, trouble starts another
 * cooldown. Per node: each node of a fleet finds out for itself, at the cost
 * of one request each.
 */

const COOLDOWN_MS = 30_000;
/** Docker Hub's limits reset over hours; past a few minutes it is better to ask again. */
const MAX_COOLDOWN_MS = 300_000;

interface Trouble {
  /** Until when the upstream is skipped. */
  until: number;
  /** A request is asking the upstream again, its cooldown over. */
  probing: boolean;
}

export interface TroubledOptions {
  now?: () => number;
  /** Told when an upstream starts being skipped (with for how long) and when it answers again. */
  changed?: (upstream: string, skippedForMs: number | undefined) => void;
}

export class TroubledUpstreams {
  private readonly troubled = new Map<string, Trouble>();
  private readonly now: () => number;

  constructor(private readonly options: TroubledOptions = {}) {
    this.now = options.now ?? Date.now;
  }

  /**
   * Whether this request should go to the fallbacks before `upstream`. False
   * once its cooldown is over for the one request that then asks it again:
   * that request must report what it got (`answered`, `inTrouble` or `gaveUp`).
   */
  skips(upstream: string): boolean {
    const trouble = this.troubled.get(upstream);
    if (!trouble) return false;
    if (trouble.probing || this.now() < trouble.until) return true;
    trouble.probing = true;
    return false;
  }

  /** The upstream answered (anything but trouble): it is asked first again. */
  answered(upstream: string): void {
    if (this.troubled.delete(upstream)) this.options.changed?.(upstream, undefined);
  }

  /** The upstream answered 429 or 5xx (with its `Retry-After`, if any) or could not be reached. */
  inTrouble(upstream: string, retryAfter?: string | null): void {
    const ms = cooldownMs(retryAfter);
    const was = this.troubled.get(upstream);
    this.troubled.set(upstream, { until: this.now() + ms, probing: false });
    if (!was) this.options.changed?.(upstream, ms);
  }

  /** The request ended with no verdict on the upstream (its client left): another request asks it again. */
  gaveUp(upstream: string): void {
    const trouble = this.troubled.get(upstream);
    if (trouble) trouble.probing = false;
  }
}

/** RFC 9110 §10.2.3 `Retry-After` in seconds (an HTTP-date is rare from registries: the default then). */
function cooldownMs(retryAfter: string | null | undefined): number {
  const seconds = retryAfter && /^\d+$/.test(retryAfter.trim()) ? Number(retryAfter) : 0;
  return Math.min(Math.max(seconds * 1000, COOLDOWN_MS), MAX_COOLDOWN_MS);
}
