/**
 * The lease of one fill in Redis: `docxy:fill:<digest>` holds
 * "<token> <advertise_url>" of the node filling it. Taken with
 * `SET NX PX ... GET` (one round trip: either this node wins, or it learns
 * who holds it), kept alive while the fill runs, and released by
 * compare-and-delete, so a node whose lease expired (it stalled, then came
 * back) never renews or deletes the lease of the node that took over. A node
 * that dies stops renewing: its lease expires after TTL_MS and the next
 * request claims it — or sooner, when a node finds it unreachable and drops
 * that lease (compare-and-delete on the value it saw, so a newer lease stays).
 *
 * A fill that committed keeps its lease for COMMITTED_MS instead of deleting
 * it: nodes asking a moment later still find the owner, which serves the
 * blob from its store (http/routes/fleet.ts) — without that, a node arriving
 * just after the commit would download the blob from upstream again.
 */
import { randomUUID } from "node:crypto";
import type { FleetRedis } from "./redis";

const TTL_MS = 10_000;
const COMMITTED_MS = 60_000;
const KEY_PREFIX = "docxy:fill:";

const RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";
const RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

/** A lease this node holds; renewed every third of its TTL until released. */
export interface Lease {
  /** Resolves once Redis answered (or did not in time); later calls do nothing. */
  release(committed?: boolean): Promise<void>;
}

/**
 * won: this node fills; held: `owner` (an advertise_url) does — `drop` deletes
 * that very lease, when its node turned out to be gone; undefined: Redis is
 * unavailable.
 */
export type LeaseAttempt = { won: Lease } | { owner: string; drop(): Promise<void> } | undefined;

export class FillLeases {
  private readonly ttlMs: number;
  private readonly committedMs: number;

  constructor(
    private readonly redis: FleetRedis,
    private readonly advertiseUrl: string,
    options: { ttlMs?: number; committedMs?: number } = {},
  ) {
    this.ttlMs = options.ttlMs ?? TTL_MS;
    this.committedMs = options.committedMs ?? COMMITTED_MS;
  }

  async take(digest: string): Promise<LeaseAttempt> {
    const key = KEY_PREFIX + digest;
    const value = `${randomUUID()} ${this.advertiseUrl}`;
    const answer = await this.redis.send("SET", [key, value, "NX", "PX", String(this.ttlMs), "GET"]);
    if (!answer) return undefined;
    if (typeof answer.value !== "string") return { won: this.keep(key, value) };
    const held = answer.value;
    const owner = held.slice(held.indexOf(" ") + 1);
    if (owner !== this.advertiseUrl) return { owner, drop: async () => void (await this.redis.send("EVAL", [RELEASE, "1", key, held])) };
    // This node's own lease, yet it is not filling the digest (the caller holds its local claim):
    // left by a committed fill whose blob is gone since, or by this node's previous life. Taken over.
    const taken = await this.redis.send("SET", [key, value, "PX", String(this.ttlMs)]);
    return taken && { won: this.keep(key, value) };
  }

  private keep(key: string, value: string): Lease {
    // A renewal that fails (Redis away) is not fatal: the fill goes on, and the next one may land.
    const renew = setInterval(() => void this.redis.send("EVAL", [RENEW, "1", key, value, String(this.ttlMs)]), this.ttlMs / 3);
    let released = false;
    return {
      release: async (committed) => {
        if (released) return;
        released = true;
        clearInterval(renew);
        await this.redis.send("EVAL", committed ? [RENEW, "1", key, value, String(this.committedMs)] : [RELEASE, "1", key, value]);
      },
    };
  }
}
