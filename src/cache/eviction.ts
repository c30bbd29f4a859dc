/**
 * Keeps the cache within its limits: first whatever was unused for longer
 * than the maximum age, then least recently used entries until the total fits
 * the maximum size. An entry being read or filled is never removed; a
 * client streaming it would be cut off. Pinned content ([cache] pin) is never
 * removed either: the index leaves it out of `oldest`, so a run that must
 * drop everything else drops nothing pinned.
 *
 * This Evictor works from this node's index: a single node, or a fleet node
 * whose store is its own disk. A fleet's shared bucket is evicted from the
 * fleet's ledger instead (fleet/fleet-eviction.ts), one node at a time.
 */
import type { BlobStorage } from "./blob-storage";
import type { CacheIndex, IndexedBlob } from "./cache-index";
import { CoalescedRuns } from "./coalesced-runs";
import type { Coordination } from "./coordination";

export interface EvictorOptions {
  index: CacheIndex;
  storage: BlobStorage;
  /** Where the eviction runs once at a time (in a fleet: on one node at a time). */
  coordination: Pick<Coordination, "exclusive">;
  maxBytes?: number;
  maxAgeMs?: number;
  /** True while the entry is being read or filled. */
  inUse: (digest: string) => boolean;
  now?: () => number;
  log?: (message: string, fields: Record<string, string | number>) => void;
}

export interface EvictionResult {
  removed: number;
  freedBytes: number;
}

/** What the blob cache asks of either evictor. */
export interface Eviction {
  /** Evicts what exceeds the limits (runs coalesce). */
  run(): Promise<EvictionResult>;
  /** Runs again only if the last run had to skip content in use (call when a reader finishes). */
  runIfSkipped(): void;
}

/** Rows read from the index per query while walking from the oldest entry. */
const BATCH = 64;

export class Evictor implements Eviction {
  private readonly runs = new CoalescedRuns(() => this.evictAlone());
  /** The last run left something it should have removed because it was in use. */
  private skippedInUse = false;

  constructor(private readonly options: EvictorOptions) {}

  /** One run at a time: calls during a run share it, and one more run follows (coalesced-runs.ts). */
  run(): Promise<EvictionResult> {
    return this.runs.run();
  }

  /** Runs again only if the last run had to skip content in use (call when a reader finishes). */
  runIfSkipped(): void {
    if (this.skippedInUse) void this.run();
  }

  /** Another holder evicting (in a fleet, another node) does the work; this run removes nothing. */
  private async evictAlone(): Promise<EvictionResult> {
    return (await this.options.coordination.exclusive("eviction", () => this.evict())) ?? { removed: 0, freedBytes: 0 };
  }

  private async evict(): Promise<EvictionResult> {
    this.skippedInUse = false;
    const { index, storage, maxBytes, maxAgeMs, inUse, now = Date.now, log } = this.options;
    const expiredBefore = maxAgeMs === undefined ? undefined : now() - maxAgeMs;
    let total = index.totalBytes();
    const result: EvictionResult = { removed: 0, freedBytes: 0 };
    for (const entry of this.oldestFirst()) {
      const expired = expiredBefore !== undefined && entry.lastAccess < expiredBefore;
      const oversize = maxBytes !== undefined && total > maxBytes;
      if (!expired && !oversize) break; // oldest first: no later entry qualifies either
      if (inUse(entry.digest)) {
        this.skippedInUse = true;
        continue;
      }
      try {
        await storage.delete(entry.digest);
      } catch (error) {
        // The index keeps the row, so the bytes stay accounted for and the next run retries.
        log?.("cache eviction could not delete a blob", { digest: entry.digest, error: (error as Error).message ?? String(error) });
        continue;
      }
      index.removeBlob(entry.digest);
      total -= entry.size;
      result.removed++;
      result.freedBytes += entry.size;
    }
    return result;
  }

  /**
   * Index entries from the least recently used on. Removed rows leave the
   * table and skipped ones stay, so each query asks for enough rows to get
   * past everything already handed out.
   */
  private *oldestFirst(): Generator<Omit<IndexedBlob, "mediaType">> {
    const seen = new Set<string>();
    for (;;) {
      const fresh = this.options.index.oldest(seen.size + BATCH).filter((entry) => !seen.has(entry.digest));
      if (fresh.length === 0) return;
      for (const entry of fresh) {
        seen.add(entry.digest);
        yield entry;
      }
    }
  }
}
