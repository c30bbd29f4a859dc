/**
 * The lease of one fill in Redis: `docxy:fill:<digest>` holds
 * "<token> <advertise_url>" of the node filling it. Taken with
 * `SET NX PX ... GET` (one round trip: either this node wins, or it learns
 * who holds it), kept alive while the fill runs, and released by
 * compare-and-delete, so a node whose lease expired (it stalled, then came
 * back) never renews or deletes the lease of the node that took over. A node
 * that dies stops renewing: its lease expires after TTL_MS and the next
 * request claims it.
 */
import { randomUUID } from "node:crypto";
import type { FleetRedis } from "./redis";

const TTL_MS = 10_000;
const KEY_PREFIX = "docxy:fill:";

const RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";
const RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

/** A lease this node holds; renewed every third of its TTL until released. */
export interface Lease {
  /** Resolves once Redis answered (or did not in time); later calls do nothing. */
  release(): Promise<void>;
}

/** won: this node fills; held: `owner` (an advertise_url) does; undefined: Redis is unavailable. */
export type LeaseAttempt = { won: Lease } | { owner: string } | undefined;

export class FillLeases {
  private readonly ttlMs: number;

  constructor(
    private readonly redis: FleetRedis,
    private readonly advertiseUrl: string,
    options: { ttlMs?: number } = {},
  ) {
    this.ttlMs = options.ttlMs ?? TTL_MS;
  }

  async take(digest: string): Promise<LeaseAttempt> {
    const key = KEY_PREFIX + digest;
    const value = `${randomUUID()} ${this.advertiseUrl}`;
    const answer = await this.redis.send("SET", [key, value, "NX", "PX", String(this.ttlMs), "GET"]);
    if (!answer) return undefined;
    if (typeof answer.value === "string") return { owner: answer.value.slice(answer.value.indexOf(" ") + 1) };
    return { won: this.keep(key, value) };
  }

  private keep(key: string, value: string): Lease {
    // A renewal that fails (Redis away) is not fatal: the fill goes on, and the next one may land.
    const renew = setInterval(() => void this.redis.send("EVAL", [RENEW, "1", key, value, String(this.ttlMs)]), this.ttlMs / 3);
    let released = false;
    return {
      release: async () => {
        if (released) return;
        released = true;
        clearInterval(renew);
        await this.redis.send("EVAL", [RELEASE, "1", key, value]);
      },
    };
  }
}
