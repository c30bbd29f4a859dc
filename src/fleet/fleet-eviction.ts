/**
 * Eviction of a fleet's shared bucket (issue 16): the Evictor's job
 * (cache/eviction.ts: unused for longer than max_age, then least recently
 * used until the total fits max_size) against the fleet's ledger in Redis
 * (shared-lru.ts) instead of this node's index, by one node at a time.
 *
 * A run takes the fleet's eviction lock (`docxy:lock:eviction`, SET NX PX,
 * renewed while it runs, released by compare-and-delete). For each victim,
 * oldest first: skip it while this node reads or fills it; otherwise take it
 * out of the ledger in one script that also finds no reader on any node
 * (a fill's followers count), and only then DELETE its object. Other nodes' indexes keep
 * a row until their next open of it fails (the blob cache then fetches it
 * again). A DELETE that fails puts the entry back, so the next run retries.
 *
 * Redis unavailable: no lock, no ledger, so this run deletes nothing (and
 * says so, once per outage): a node never evicts the shared bucket blindly.
 * A Redis that lost its data (restarted) is refilled from the bucket's
 * listing by the first run after it (`docxy:lru:listed` marks it done).
 */
import { CoalescedRuns } from "../cache/coalesced-runs";
import { randomUUID } from "node:crypto";
import type { BlobStorage } from "../cache/blob-storage";
import type { CacheIndex } from "../cache/cache-index";
import type { Eviction, EvictionResult } from "../cache/eviction";
import type { FleetRedis } from "./redis";
import type { SharedLru } from "./shared-lru";

const LOCK = "docxy:lock:eviction";
const LOCK_TTL_MS = 30_000;
const LISTED = "docxy:lru:listed";
/** How often the ledger is matched to the bucket again, beyond a Redis restart: objects put by hand, records lost in an outage. */
const RELIST_MS = 24 * 3600_000;
const BATCH = 64;
/** A blob skipped for a reader on another node: this node cannot hear that read end, so it looks again after this. */
const RETRY_MS = 30_000;
const RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
const RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";

export interface FleetEvictorOptions {
  redis: FleetRedis;
  lru: SharedLru;
  storage: BlobStorage;
  /** This node's index: an evicted blob leaves it at once (other nodes' on their next open). */
  index: CacheIndex;
  maxBytes?: number;
  maxAgeMs?: number;
  /** True while this node reads or fills the blob (other nodes' readers are in the ledger). */
  inUse: (digest: string) => boolean;
  now?: () => number;
  log?: (message: string, fields: Record<string, string | number>) => void;
  /** Overrides RETRY_MS (tests). */
  retryMs?: number;
}

/**
 * What an admin's purge of one blob did: removed (object deleted, out of the ledger and this
 * node's index), absent (neither this node's index nor the ledger knew it), in-use (a client on
 * some node reads it: nothing deleted), unavailable (Redis does not answer: nothing deleted, as
 * no reader could be ruled out).
 */
export type PurgeResult = "removed" | "absent" | "in-use" | "unavailable";

const NOTHING: EvictionResult = { removed: 0, freedBytes: 0 };

export class FleetEvictor implements Eviction {
  private readonly runs = new CoalescedRuns(() => this.locked());
  private skippedInUse = false;
  /** Whether the last run was skipped for want of Redis (logged on the change only). */
  private redisAway = false;
  private retry: Timer | undefined;

  constructor(private readonly options: FleetEvictorOptions) {}

  /** As Evictor.run: calls during a run share it, and one more run follows. */
  run(): Promise<EvictionResult> {
    return this.runs.run();
  }

  runIfSkipped(): void {
    if (this.skippedInUse) void this.run();
  }

  /** Another node holding the lock does the work; this run removes nothing. */
  private async locked(): Promise<EvictionResult> {
    const { redis } = this.options;
    const token = randomUUID();
    const taken = await redis.send("SET", [LOCK, token, "NX", "PX", String(LOCK_TTL_MS)]);
    this.noteRedis(taken !== undefined);
    if (!taken || taken.value === null) return NOTHING;
    const renew = setInterval(() => void redis.send("EVAL", [RENEW, "1", LOCK, token, String(LOCK_TTL_MS)]), LOCK_TTL_MS / 3);
    try {
      const result = await this.evict();
      void this.options.lru.refreshTotal(); // the metrics show the fleet's total after the run
      return result;
    } finally {
      clearInterval(renew);
      await redis.send("EVAL", [RELEASE, "1", LOCK, token]);
    }
  }

  private async evict(): Promise<EvictionResult> {
    this.skippedInUse = false;
    const { lru, storage, index, maxBytes, maxAgeMs, inUse, now = Date.now, log } = this.options;
    await lru.flush(); // this node's latest commits and hits count in this run
    if (!(await this.listed())) return NOTHING;
    let total = await lru.totalBytes();
    if (total === undefined) return NOTHING;
    const expiredBefore = maxAgeMs === undefined ? undefined : now() - maxAgeMs;
    const result: EvictionResult = { removed: 0, freedBytes: 0 };
    let skipped = 0; // entries left in the ledger ahead of the next page
    for (;;) {
      const page = await lru.oldest(skipped, BATCH);
      if (!page || page.length === 0) return result;
      for (const entry of page) {
        const expired = expiredBefore !== undefined && entry.lastAccess < expiredBefore;
        const oversize = maxBytes !== undefined && total > maxBytes;
        if (!expired && !oversize) return result; // oldest first: no later entry qualifies either
        if (inUse(entry.digest)) {
          skipped++;
          this.skippedInUse = true;
          continue;
        }
        // Pinned here ([cache] pin): every node pins the same list, so the node that pinned it
        // passes it by, whichever node evicts (README "Pinned images").
        if (index.isPinned(entry.digest)) {
          skipped++;
          continue;
        }
        const claimed = await lru.claim(entry);
        if (claimed === undefined) return result; // Redis went away: stop, delete nothing more
        if (claimed === "gone") continue;
        if (claimed === "in-use" || claimed === "used-since") {
          skipped++;
          if (claimed === "in-use") this.retryLater();
          continue;
        }
        try {
          await storage.delete(entry.digest);
        } catch (error) {
          skipped++;
          await lru.restore(entry);
          log?.("cache eviction could not delete a blob", { digest: entry.digest, error: (error as Error).message ?? String(error) });
          continue;
        }
        await lru.deleted(entry.digest);
        index.removeBlob(entry.digest);
        total -= claimed.size;
        result.removed++;
        result.freedBytes += claimed.size;
      }
    }
  }

  /**
   * An admin's purge of `digest` from the shared bucket, through the same claim as eviction: the
   * object is deleted only once the ledger found no reader on any node, and the ledger's total
   * drops by the size it counted. Refused while a read runs, rather than deferred: the admin gets
   * a definite answer now, and nothing has to remember a pending delete across nodes and restarts
   * (the admin retries; eviction takes it anyway once the read ends, if it is due). No eviction
   * lock: the claim alone makes this and a run delete an object once.
   */
  async purge(digest: string): Promise<PurgeResult> {
    const { lru, storage, index, inUse, log } = this.options;
    if (inUse(digest)) return "in-use";
    await lru.flush(); // this node's record of it, if not yet sent, lands before the claim
    const claimed = await lru.claimForPurge(digest);
    if (claimed === undefined) return "unavailable";
    if (claimed === "in-use") return "in-use";
    const known = index.getBlob(digest) !== undefined;
    if (claimed === "being-evicted") {
      index.removeBlob(digest);
      return known ? "removed" : "absent";
    }
    try {
      // Deleted even when neither the ledger nor this index knew it: the bucket may hold it anyway.
      await storage.delete(digest);
    } catch (error) {
      if (claimed.size > 0) await lru.restore({ digest, size: claimed.size, lastAccess: Date.now() });
      else await lru.deleted(digest);
      log?.("cache purge could not delete a blob", { digest, error: (error as Error).message ?? String(error) });
      throw error;
    }
    await lru.deleted(digest);
    index.removeBlob(digest);
    void lru.refreshTotal();
    return known || claimed.size > 0 ? "removed" : "absent";
  }

  /** Matches the ledger to the bucket when Redis has no record of having done so; false when that could not finish. */
  private async listed(): Promise<boolean> {
    const { redis, lru, storage, log } = this.options;
    const fresh = await redis.send("SET", [LISTED, "1", "NX", "PX", String(RELIST_MS)]);
    if (!fresh) return false;
    if (fresh.value === null) return true;
    try {
      if (await lru.adopt(storage.list())) return true;
    } catch (error) {
      log?.("cache eviction could not list the bucket", { error: (error as Error).message ?? String(error) });
    }
    await redis.send("DEL", [LISTED]); // the next run lists again
    return false;
  }

  private retryLater(): void {
    this.retry ??= setTimeout(() => {
      this.retry = undefined;
      void this.run();
    }, this.options.retryMs ?? RETRY_MS);
    this.retry.unref?.();
  }

  private noteRedis(answered: boolean): void {
    if (answered === !this.redisAway) return;
    this.redisAway = !answered;
    if (this.redisAway) this.options.log?.("cache eviction paused: the fleet's Redis is unavailable, nothing is deleted from the shared bucket until it answers", {});
  }
}
