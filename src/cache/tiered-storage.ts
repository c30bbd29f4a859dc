/**
 * A node's local hot tier in front of the fleet's bucket (issue 16, `[cache.s3] hot_tier_size`):
 * blobs read often are served from this node's disk, as local files (a `path`, so the edge sends
 * them like any filesystem hit), and cost the bucket nothing.
 *
 * The bucket stays the truth: writes go there first, `list` and `shared` are its own, and the tier
 * holds copies only, bounded by its own LRU; dropping a copy never touches the bucket. A copy
 * becomes visible locally only as a fill does (FsStorage: temp file, rename): a fill's bytes are
 * written beside its upload and kept once the bucket committed them (the caller verified them
 * before `commit`); a blob read from the bucket is copied in the background by a second GET,
 * hashed on the way and dropped unless its size and sha256 match. A client never waits for a copy.
 *
 * A copy cut or grown behind the tier's back is caught by the size recorded when it was verified
 * (one stat per hit) and never served; bytes altered in place at the same size are not (that would
 * cost a hash per hit, which is what the tier saves).
 */
import type { BlobStorage, StoredBlob, TempBlob } from "./blob-storage";
import { FsStorage } from "./fs-storage";

export interface TieredStorageOptions {
  /** The bucket (S3Storage): the truth. */
  bucket: BlobStorage;
  /** The tier's own directory (FsStorage layout), e.g. `<cache dir>/hot`. */
  dir: string;
  /** Bytes of committed copies the tier may hold. */
  maxBytes: number;
  /** True while a client reads `digest` (BlobCache.inUse): its copy is not dropped from under the reader. */
  inUse(digest: string): boolean;
}

/**
 * Background copies at once. Each is a full GET beside the clients' own: a cold image pulled
 * through the node would otherwise double the bucket traffic at its busiest moment. A read that
 * finds no slot leaves the copy to a later read.
 */
const MAX_COPIES = 4;

export class TieredStorage implements BlobStorage {
  readonly shared: boolean;
  /** Committed copies and their verified sizes, least recently used first (a Map keeps insertion order). */
  private readonly hot = new Map<string, number>();
  private hotBytes = 0;
  /** Bytes promised to copies in progress, so that concurrent copies cannot overshoot the bound together. */
  private reserved = 0;
  private readonly copies = new Map<string, Promise<void>>();
  /** Deleted while being copied: the copy, verified as it may be, must not bring the blob back on this node. */
  private readonly deletedWhileCopying = new Set<string>();

  private constructor(
    private readonly bucket: BlobStorage,
    private readonly local: FsStorage,
    private readonly maxBytes: number,
    private readonly inUse: (digest: string) => boolean,
  ) {
    this.shared = bucket.shared ?? false;
  }

  /** Opens the tier's directory and keeps the copies a previous run verified, within the (maybe lowered) bound. */
  static async open(options: TieredStorageOptions): Promise<TieredStorage> {
    const local = await FsStorage.open(options.dir);
    const tier = new TieredStorage(options.bucket, local, options.maxBytes, options.inUse);
    for await (const { digest, size } of local.list()) tier.remember(digest, size);
    await tier.evict(tier.victims(0) ?? []);
    return tier;
  }

  async open(digest: string): Promise<StoredBlob | undefined> {
    const size = this.hot.get(digest);
    if (size !== undefined) {
      const copy = await this.local.open(digest).catch(() => undefined);
      if (copy?.size === size) {
        this.hot.delete(digest); // most recently used: to the end
        this.hot.set(digest, size);
        return copy;
      }
      await this.evict([digest]); // gone, cut or grown: the bucket answers instead
    }
    const stored = await this.bucket.open(digest);
    if (!stored) return undefined;
    return {
      size: stored.size,
      // Copied only when bytes are wanted: a HEAD costs no GET.
      stream: (start, end) => {
        this.copyInBackground(digest, stored);
        return stored.stream(start, end);
      },
    };
  }

  async begin(digest?: string): Promise<TempBlob> {
    const bucket = await this.bucket.begin(digest);
    // A tier that cannot be written (disk full) costs bucket reads later, never the fill.
    const local = await this.local.begin().catch(() => undefined);
    return new TieredTempBlob(bucket, local, this.maxBytes, (committed, size, temp) => this.keep(committed, size, temp));
  }

  async delete(digest: string): Promise<void> {
    if (this.copies.has(digest)) this.deletedWhileCopying.add(digest);
    const [bucket] = await Promise.allSettled([this.bucket.delete(digest), this.evict([digest])]);
    if (bucket.status === "rejected") throw bucket.reason;
  }

  list(): AsyncIterable<{ digest: string; size: number }> {
    return this.bucket.list();
  }

  /** Settles once the copies in progress have committed or been dropped. */
  async copied(): Promise<void> {
    await Promise.all(this.copies.values());
  }

  /** Copies a blob read from the bucket into the tier, unless it is there, being copied, too large or no slot is free. */
  private copyInBackground(digest: string, stored: StoredBlob): void {
    if (this.hot.has(digest) || this.copies.has(digest) || this.copies.size >= MAX_COPIES) return;
    if (!digest.startsWith("sha256:")) return; // the only algorithm a copy can be verified with
    this.track(digest, stored.size, async () => {
      const temp = await this.local.begin();
      try {
        await copyVerified(stored, digest, temp);
        await temp.commit(digest);
      } catch (error) {
        await temp.abort();
        throw error;
      }
    });
  }

  /**
   * A fill's local twin, after the bucket committed the same bytes: kept in the background (its
   * fsync is no client's wait); when it is not wanted, the returned promise is its removal.
   */
  private async keep(digest: string, size: number, temp: TempBlob): Promise<void> {
    const wanted = !this.hot.has(digest) && !this.copies.has(digest) && this.track(digest, size, () => temp.commit(digest));
    if (!wanted) await temp.abort();
  }

  /** Runs `commit` with `size` bytes reserved; false when the tier cannot make room. */
  private track(digest: string, size: number, commit: () => Promise<void>): boolean {
    const victims = this.victims(size);
    if (!victims) return false;
    this.reserved += size;
    const done = this.evict(victims)
      .then(commit)
      .then(
        () => this.remember(digest, size),
        () => {}, // not copied: the bucket keeps serving it
      )
      .finally(() => {
        this.reserved -= size;
        this.copies.delete(digest);
        if (this.deletedWhileCopying.delete(digest)) return this.evict([digest]);
      });
    this.copies.set(digest, done);
    return true;
  }

  /** The least recently used copies no one reads whose removal makes room for `size` more bytes, or undefined when they cannot. */
  private victims(size: number): string[] | undefined {
    let excess = this.hotBytes + this.reserved + size - this.maxBytes;
    const victims: string[] = [];
    for (const [digest, bytes] of this.hot) {
      if (excess <= 0) break;
      if (this.inUse(digest)) continue;
      victims.push(digest);
      excess -= bytes;
    }
    return excess <= 0 ? victims : undefined;
  }

  /** Forgets the copies at once (no reader is handed them any more), then deletes their files. */
  private async evict(digests: string[]): Promise<void> {
    for (const digest of digests) {
      const size = this.hot.get(digest);
      if (size === undefined) continue;
      this.hot.delete(digest);
      this.hotBytes -= size;
    }
    // A file that cannot be deleted is found again at the next start and counted then.
    await Promise.all(digests.map((digest) => this.local.delete(digest).catch(() => {})));
  }

  private remember(digest: string, size: number): void {
    if (this.hot.has(digest)) return;
    this.hot.set(digest, size);
    this.hotBytes += size;
  }
}

/** Streams the whole blob into `temp` (one chunk in flight: the bucket is read at the disk's pace) and checks its size and sha256. */
async function copyVerified(stored: StoredBlob, digest: string, temp: TempBlob): Promise<void> {
  const hasher = new Bun.CryptoHasher("sha256");
  let length = 0;
  for await (const chunk of stored.stream(0, stored.size - 1)) {
    hasher.update(chunk);
    length += chunk.length;
    await temp.write(chunk);
  }
  const actual = `sha256:${hasher.digest("hex")}`;
  if (length !== stored.size || actual !== digest) throw new Error(`copy of ${digest} read ${length} bytes hashing to ${actual}`);
}

/**
 * A fill written to the bucket and, chunk by chunk, to a local temp file of the tier. The local
 * side is best effort: a failed write, or a blob outgrowing the tier, drops it and the fill goes on.
 */
class TieredTempBlob implements TempBlob {
  private written = 0;
  /** The local side's abort, once dropped: waited for by commit and abort, so no temp file outlives the fill. */
  private dropping: Promise<void> = Promise.resolve();

  constructor(
    private readonly bucket: TempBlob,
    private local: TempBlob | undefined,
    private readonly maxBytes: number,
    private readonly keep: (digest: string, size: number, local: TempBlob) => Promise<void>,
  ) {}

  get path(): string | undefined {
    return this.bucket.path;
  }

  write(chunk: Uint8Array): Promise<void> {
    this.written += chunk.length;
    if (this.written > this.maxBytes) this.dropLocal();
    // Both issued now, in call order: each temp queues its writes, so unawaited writes still append in order.
    const local = this.local?.write(chunk).catch(() => this.dropLocal());
    return Promise.all([this.bucket.write(chunk), local]).then(() => {});
  }

  read(position: number, length: number): Promise<Uint8Array> {
    return this.bucket.read(position, length);
  }

  async commit(digest: string): Promise<void> {
    try {
      await this.bucket.commit(digest);
    } catch (error) {
      this.dropLocal(); // nothing in the bucket: no copy of it either
      await this.dropping;
      throw error;
    }
    const local = this.local;
    this.local = undefined;
    if (local) await this.keep(digest, this.written, local);
    await this.dropping;
  }

  async abort(): Promise<void> {
    this.dropLocal();
    await Promise.all([this.bucket.abort(), this.dropping]);
  }

  private dropLocal(): void {
    if (!this.local) return;
    this.dropping = this.local.abort();
    this.local = undefined;
  }
}
