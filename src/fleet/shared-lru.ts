/**
 * The fleet's ledger of its shared bucket (issue 16), in Redis: which blobs
 * the bucket holds, their sizes, when each was last used, and who is reading
 * which right now. Each node's own index (cache-index.ts) keeps to what that
 * node served; eviction of the bucket (fleet-eviction.ts) works from this
 * ledger instead, so the fleet counts its bytes once and never deletes what
 * a reader on any node is streaming.
 *
 * - `docxy:lru` ZSET digest → last use (ms), `docxy:size` HASH digest →
 *   bytes, `docxy:bytes` their sum, kept together by Lua scripts.
 * - `docxy:reading:<digest>` ZSET node id → expiry: a node registers a
 *   digest while any of its clients reads it and refreshes it every third of
 *   READER_TTL_MS, so a dead node's readers expire on their own.
 * - `docxy:evicting:<digest>`: set by the evictor in the same script that
 *   found no reader; a reader registering meanwhile is told the blob is
 *   going and treats it as gone. Both scripts are atomic, so either the
 *   reader or the evictor wins, never both.
 *
 * Commits, adoptions and hits are recorded in batches every FLUSH_MS, never
 * awaited by a request. Registering a reader is awaited, since its answer
 * decides whether the blob may be served: one round trip per digest a node
 * starts reading (concurrent readers share it), in parallel with the
 * store's HEAD. Redis unavailable (fleet/redis.ts): records
 * are dropped, readers proceed unregistered, and the evictor does not run,
 * so nothing is deleted blindly. A Redis that lost its data is refilled from
 * the bucket's listing (`adopt`): the bucket is the truth.
 */
import { randomUUID } from "node:crypto";
import type { CacheIndex } from "../cache/cache-index";
import { ADOPT, BYTES, CLAIM, EVICTING, EVICTING_MS, FILL, LRU, PURGE, READING, RECORD, REFRESH, REGISTER, RESTORE, SIZE } from "./ledger-scripts";
import type { FleetRedis } from "./redis";

const FLUSH_MS = 1_000;
const READER_TTL_MS = 30_000;

export interface LedgerEntry {
  digest: string;
  size: number;
  lastAccess: number;
}

/** What claiming a victim found; undefined from the methods below: Redis unavailable. */
export type Claimed = { size: number } | "in-use" | "gone" | "used-since";

/** What claiming a blob for a purge found: its size in the ledger (0: it counted none), or why not. */
export type PurgeClaimed = { size: number } | "in-use" | "being-evicted";

/** How often the fleet's total is read for the metrics and the status views (never during a scrape). */
const TOTAL_MS = 10_000;

export class SharedLru {
  /** digest → size (a commit or adoption) or "" (a hit), and when, sent at the next flush. */
  private pending = new Map<string, { size: string; at: number }>();
  private flushTimer: Timer | undefined;
  /** Digests this node's clients read now: how many, and whether Redis let them. */
  private readonly held = new Map<string, { count: number; allowed: Promise<boolean> }>();
  private readonly refresher: Timer;
  private readonly nodeId = randomUUID();
  private readonly totalReader: Timer;
  /** The fleet's cached bytes as last read (refreshTotal); undefined until Redis answered once. */
  private lastTotal: number | undefined;

  constructor(
    private readonly redis: FleetRedis,
    private readonly now: () => number = Date.now,
  ) {
    this.refresher = setInterval(() => void this.refresh(), READER_TTL_MS / 3);
    this.refresher.unref();
    this.totalReader = setInterval(() => void this.refreshTotal(), TOTAL_MS);
    this.totalReader.unref();
    void this.refreshTotal();
  }

  /**
   * The fleet's cached bytes as last read from Redis, at most TOTAL_MS old (a purge or an
   * eviction here reads it again at once): what the metrics and status views show, never
   * waiting on Redis. Undefined until Redis answered once; while it is away, the last value.
   */
  get fleetBytes(): number | undefined {
    return this.lastTotal;
  }

  /** Reads the fleet's total again for `fleetBytes`; resolves once Redis answered or was given up on. */
  async refreshTotal(): Promise<number | undefined> {
    const total = await this.totalBytes();
    if (total !== undefined) this.lastTotal = total;
    return this.lastTotal;
  }

  /** A blob committed or adopted here. */
  record(digest: string, size: number): void {
    this.pending.set(digest, { size: String(size), at: this.now() });
    this.scheduleFlush();
  }

  /** A hit: moves a digest the ledger knows to the back of the eviction order. */
  touch(digest: string): void {
    const recorded = this.pending.get(digest);
    this.pending.set(digest, { size: recorded?.size ?? "", at: this.now() });
    this.scheduleFlush();
  }

  /** Sends what was recorded since the last flush (resolves once Redis answered or was given up on). */
  async flush(): Promise<void> {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.pending.size === 0) return;
    const batch = [...this.pending].flatMap(([digest, { size, at }]) => [digest, size, String(at)]);
    this.pending = new Map();
    await this.redis.send("EVAL", [RECORD, "3", LRU, SIZE, BYTES, ...batch]);
  }

  /**
   * Registers a reader of `digest` on this node, before its bytes are
   * served. The promise says whether it may be served: false while the
   * fleet's evictor is deleting it; true when Redis is unavailable (nothing
   * is evicted then either). Call `release` once the read ends.
   */
  hold(digest: string): { allowed: Promise<boolean>; release(): void } {
    let entry = this.held.get(digest);
    if (entry) entry.count++;
    else {
      const allowed = this.redis
        .send("EVAL", [REGISTER, "2", READING + digest, EVICTING + digest, this.nodeId, String(this.now()), String(READER_TTL_MS)])
        .then((answer) => {
          // Refused (being evicted): not registered, so the next reader asks again instead of
          // inheriting the refusal for as long as these holders last (a refill may follow).
          if (answer?.value === 0 && this.held.get(digest) === fresh) this.held.delete(digest);
          return answer?.value !== 0;
        });
      const fresh = { count: 1, allowed };
      this.held.set(digest, (entry = fresh));
    }
    const mine = entry;
    let released = false;
    return {
      allowed: mine.allowed,
      release: () => {
        if (released) return;
        released = true;
        if (--mine.count > 0 || this.held.get(digest) !== mine) return;
        this.held.delete(digest);
        void this.redis.send("ZREM", [READING + digest, this.nodeId]);
      },
    };
  }

  /** The fleet's cached bytes. */
  async totalBytes(): Promise<number | undefined> {
    const answer = await this.redis.send("GET", [BYTES]);
    return answer && Number(answer.value ?? 0);
  }

  /** `limit` entries from the least recently used on, skipping `offset`. */
  async oldest(offset: number, limit: number): Promise<LedgerEntry[] | undefined> {
    const answer = await this.redis.send("ZRANGE", [LRU, String(offset), String(offset + limit - 1), "WITHSCORES"]);
    if (!answer) return undefined;
    const pairs = answer.value as (string | number | [string, number])[];
    const rows = pairs.length > 0 && Array.isArray(pairs[0]) ? (pairs as [string, number][]) : chunk(pairs as (string | number)[]);
    if (rows.length === 0) return [];
    const sizes = await this.redis.send("HMGET", [SIZE, ...rows.map(([digest]) => String(digest))]);
    if (!sizes) return undefined;
    return rows.map(([digest, score], i) => ({
      digest: String(digest),
      lastAccess: Number(score),
      size: Number((sizes.value as (string | null)[])[i] ?? 0),
    }));
  }

  /** Takes `entry` out of the ledger unless a node reads it (or follows its fill), or used it since it was listed. */
  async claim(entry: LedgerEntry): Promise<Claimed | undefined> {
    const { digest } = entry;
    const keys = [LRU, SIZE, BYTES, READING + digest, EVICTING + digest, FILL + digest];
    const answer = await this.redis.send("EVAL", [CLAIM, "6", ...keys, digest, String(this.now()), String(EVICTING_MS), String(entry.lastAccess)]);
    if (!answer) return undefined;
    const value = Number(answer.value);
    return value >= 0 ? { size: value } : value === -1 ? "in-use" : value === -2 ? "gone" : "used-since";
  }

  /**
   * Takes `digest` out of the ledger for an admin's purge unless a node reads it (or follows its
   * fill) or another claim is deleting it; then its object may be deleted, and `deleted` or
   * `restore` must follow as after `claim`.
   */
  async claimForPurge(digest: string): Promise<PurgeClaimed | undefined> {
    const keys = [LRU, SIZE, BYTES, READING + digest, EVICTING + digest, FILL + digest];
    const answer = await this.redis.send("EVAL", [PURGE, "6", ...keys, digest, String(this.now()), String(EVICTING_MS)]);
    if (!answer) return undefined;
    const value = Number(answer.value);
    return value >= 0 ? { size: value } : value === -2 ? { size: 0 } : value === -1 ? "in-use" : "being-evicted";
  }

  /** The claimed blob's object is deleted: readers may register again (and will find it gone). */
  async deleted(digest: string): Promise<void> {
    await this.redis.send("DEL", [EVICTING + digest]);
  }

  /** The claimed blob's DELETE failed: it goes back in the ledger as it was. */
  async restore(entry: LedgerEntry): Promise<void> {
    const { digest, size, lastAccess } = entry;
    await this.redis.send("EVAL", [RESTORE, "4", LRU, SIZE, BYTES, EVICTING + digest, digest, String(size), String(lastAccess)]);
  }

  /** Adds what the bucket lists and the ledger lacks; false when Redis stopped answering. */
  async adopt(listing: AsyncIterable<{ digest: string; size: number }>): Promise<boolean> {
    let batch: string[] = [];
    const send = async () => {
      const answer = await this.redis.send("EVAL", [ADOPT, "3", LRU, SIZE, BYTES, String(this.now()), ...batch]);
      batch = [];
      return answer !== undefined;
    };
    for await (const { digest, size } of listing) {
      batch.push(digest, String(size));
      if (batch.length >= 200 && !(await send())) return false;
    }
    return batch.length === 0 || (await send());
  }

  close(): void {
    clearInterval(this.refresher);
    clearInterval(this.totalReader);
    clearTimeout(this.flushTimer);
  }

  private scheduleFlush(): void {
    this.flushTimer ??= setTimeout(() => void this.flush(), FLUSH_MS);
    this.flushTimer.unref?.();
  }

  /** Keeps the registrations of long reads alive; one registration that failed (Redis was away) lands here too. */
  private async refresh(): Promise<void> {
    if (this.held.size === 0) return;
    const keys = [...this.held.keys()].map((digest) => READING + digest);
    await this.redis.send("EVAL", [REFRESH, String(keys.length), ...keys, this.nodeId, String(this.now()), String(READER_TTL_MS)]);
  }
}

/**
 * This node's index, whose commits, adoptions and hits are also recorded in
 * the fleet's ledger. A proxy rather than a copy of the index's interface:
 * only these two calls differ, and every caller that writes the index
 * (blob and manifest caches) is covered without knowing of the fleet.
 */
export function recordingInto<T extends CacheIndex>(index: T, lru: SharedLru): T {
  return new Proxy(index, {
    get(target, key) {
      if (key === "putBlob") {
        return (digest: string, size: number, mediaType?: string) => {
          target.putBlob(digest, size, mediaType);
          lru.record(digest, size);
        };
      }
      if (key === "touch") {
        return (digest: string) => {
          target.touch(digest);
          lru.touch(digest);
        };
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** [member, score, member, score…] (RESP2) as pairs. */
function chunk(flat: (string | number)[]): [string, number][] {
  const pairs: [string, number][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) pairs.push([String(flat[i]), Number(flat[i + 1])]);
  return pairs;
}
