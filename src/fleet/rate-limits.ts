/**
 * Request and login counts shared by the fleet: one fixed window per key in
 * Redis (`docxy:rate:<key>`), so a client spreading requests over the nodes
 * gets the configured budget once, not once per node. A hit is INCR and the
 * window's TTL in one Lua call — atomic, so concurrent hits on several nodes
 * never lose a count or leave a counter without expiry.
 *
 * Redis unavailable (down, slow past FleetRedis' timeout, or backed off
 * after that): the call is answered by this node's in-memory store instead,
 * so limits still hold, per node, and no request waits on Redis longer than
 * the timeout. Every hit is counted in memory too, whether Redis answered or
 * not: a node losing Redis mid-window then still knows what it let through,
 * instead of handing every client a fresh budget.
 */
import { MemoryRateLimitStore, type RateLimitStore } from "../policy/rate-limiter";
import type { FleetRedis } from "./redis";

const KEY_PREFIX = "docxy:rate:";

// A key without a TTL (its first hit, or one left without expiry) starts the window.
const HIT = `local count = redis.call('incr', KEYS[1])
local ttl = redis.call('pttl', KEYS[1])
if ttl < 0 then
  redis.call('pexpire', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}`;

const PEEK = `local count = redis.call('get', KEYS[1])
if not count then return false end
return {tonumber(count), redis.call('pttl', KEYS[1])}`;

export class FleetRateLimitStore implements RateLimitStore {
  constructor(
    private readonly redis: FleetRedis,
    private readonly local: RateLimitStore = new MemoryRateLimitStore(),
  ) {}

  async hit(key: string, windowMs: number, now: number): Promise<{ count: number; resetAt: number }> {
    const [answer, local] = await Promise.all([this.redis.send("EVAL", [HIT, "1", KEY_PREFIX + key, String(windowMs)]), this.local.hit(key, windowMs, now)]);
    const window = answer && countAndTtl(answer.value);
    return window ? { count: window.count, resetAt: now + window.ttl } : local;
  }

  async peek(key: string, now: number): Promise<{ count: number; resetAt: number } | undefined> {
    const answer = await this.redis.send("EVAL", [PEEK, "1", KEY_PREFIX + key]);
    if (!answer) return this.local.peek(key, now);
    const window = countAndTtl(answer.value);
    // No key, or one that expired between GET and PTTL: no window running.
    return window && window.ttl > 0 ? { count: window.count, resetAt: now + window.ttl } : undefined;
  }
}

/** The scripts' `{count, ttl}`; undefined for Redis' nil (no such key). */
function countAndTtl(value: unknown): { count: number; ttl: number } | undefined {
  if (!Array.isArray(value)) return undefined;
  return { count: Number(value[0]), ttl: Number(value[1]) };
}
