/**
 * How many requests a client may make: a fixed window per key (a client's
 * address, or its /64 for IPv6), counted in a store so that several proxies
 * can share one (Redis INCR + PEXPIRE fits the interface) while a single
 * one keeps the counts in memory.
 *
 * A fixed window lets a client spend up to twice the limit across a window
 * boundary; it is what a store can keep in one counter per key, and pulls are
 * bursty enough that a sliding window would buy little.
 */
import { RegistryError } from "../oci/errors";
import { ipv6Groups, normalizeAddress } from "./address";

export interface RateLimitStore {
  /**
   * Counts one request for `key` and returns the count in the key's current
   * window, this request included, and when that window ends (epoch ms of `now`'s clock).
   */
  hit(key: string, windowMs: number, now: number): Promise<{ count: number; resetAt: number }>;
  /** The same without counting (Redis: GET + PTTL); undefined when `key` has no window running at `now`. */
  peek(key: string, now: number): Promise<{ count: number; resetAt: number } | undefined>;
}

interface Window {
  count: number;
  resetAt: number;
}

/**
 * Counts in a Map. Memory stays bounded by the keys seen in about one
 * window: at most once a window, the first hit after it sweeps every ended
 * window out.
 */
export class MemoryRateLimitStore implements RateLimitStore {
  private readonly windows = new Map<string, Window>();
  private sweepAt = 0;

  async hit(key: string, windowMs: number, now: number): Promise<Window> {
    if (now >= this.sweepAt) {
      for (const [k, window] of this.windows) if (window.resetAt <= now) this.windows.delete(k);
      this.sweepAt = now + windowMs;
    }
    let window = this.windows.get(key);
    if (window === undefined || window.resetAt <= now) {
      window = { count: 0, resetAt: now + windowMs };
      this.windows.set(key, window);
    }
    window.count++;
    return { ...window };
  }

  async peek(key: string, now: number): Promise<Window | undefined> {
    const window = this.windows.get(key);
    return window && window.resetAt > now ? { ...window } : undefined;
  }

  /** Keys currently held; lets tests see the sweep. */
  get size(): number {
    return this.windows.size;
  }
}

export interface RequestLimiterOptions {
  store: RateLimitStore;
  /** Requests allowed per key and window. */
  limit: number;
  windowMs: number;
  now?: () => number;
}

export class RequestLimiter {
  private readonly now: () => number;

  constructor(private readonly options: RequestLimiterOptions) {
    if (!Number.isInteger(options.limit) || options.limit < 1) throw new Error(`rate limit must be a whole number of requests, at least 1: ${options.limit}`);
    if (!(options.windowMs > 0)) throw new Error(`rate limit window must be positive: ${options.windowMs}ms`);
    this.now = options.now ?? Date.now;
  }

  /** Counts a request for `key` (see limitKey) and throws TOOMANYREQUESTS past the limit. */
  async check(key: string): Promise<void> {
    const { store, limit, windowMs } = this.options;
    const now = this.now();
    const { count, resetAt } = await store.hit(key, windowMs, now);
    if (count <= limit) return;
    // Whole seconds, rounded up: a client waiting exactly this long finds a new window.
    const retryAfter = Math.max(1, Math.ceil((resetAt - now) / 1000));
    throw new RegistryError("TOOMANYREQUESTS", `too many requests: ${limit} per ${windowMs / 1000}s allowed, retry in ${retryAfter}s`, {
      detail: { limit, windowSeconds: windowMs / 1000, retryAfterSeconds: retryAfter },
      headers: { "retry-after": String(retryAfter) },
    });
  }
}

/**
 * The key a client is counted under. An IPv6 client is given a whole /64
 * (one LAN, or one host choosing privacy addresses at will), so it is counted
 * per /64 as Docker Hub does; keying by address would hand it 2^64 budgets.
 * IPv4 is counted per address. Anything else (an unknown address) is its own key.
 */
export function limitKey(address: string): string {
  const normalized = normalizeAddress(address);
  if (normalized === null || !normalized.includes(":")) return normalized ?? address;
  const prefix = ipv6Groups(normalized).slice(0, 4).map((group) => group.toString(16));
  return `${prefix.join(":")}::/64`;
}
