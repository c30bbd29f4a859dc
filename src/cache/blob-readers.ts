/**
 * Who is reading which blob on this node, so eviction never deletes what a
 * client is being sent: readers of committed blobs (counted per digest) and
 * fills a reader still follows (their blob is committed before the last
 * follower has finished). A fill in progress is the coordination's own.
 *
 * On a fleet's shared bucket every reader is also registered fleet-wide
 * (fleet/shared-lru.ts), so another node's eviction spares it too.
 *
 * Tested through the blob cache: tests/cache/blob-cache.test.ts and
 * tests/cache/eviction.test.ts; fleet-wide in tests/fleet/fleet-eviction.test.ts.
 */
import type { Coordination } from "./coordination";
import type { Eviction } from "./eviction";
import type { Fill } from "./fill";

/**
 * Fleet-wide registration of a reader. `allowed` is false while another
 * node's eviction is deleting the blob: it is then treated as gone.
 */
export interface FleetReaders {
  hold(digest: string): { allowed: Promise<boolean>; release(): void };
}

/** A counted reader: `release` ends it (once; later calls do nothing). */
export interface BlobRead {
  release(): void;
  /** Whether the blob may be read (see FleetReaders). */
  allowed: Promise<boolean>;
}

export class BlobReaders {
  /** Fills followed by a reader here, until the last one has finished. */
  private readonly followed = new Map<string, Fill>();
  /** Readers of committed blobs, by digest. */
  private readonly reading = new Map<string, number>();

  constructor(
    private readonly coordination: Coordination,
    private readonly evictor: Eviction,
    private readonly fleet?: FleetReaders,
  ) {}

  /** Content being read, filled or followed must not be evicted. */
  inUse(digest: string): boolean {
    if ((this.reading.get(digest) ?? 0) > 0 || this.coordination.isFilling(digest)) return true;
    const fill = this.followed.get(digest);
    if (fill && fill.readerCount > 0) return true;
    this.followed.delete(digest);
    return false;
  }

  /** Counts a reader of the committed `digest` until it is released; taken before the blob is opened. */
  acquire(digest: string): BlobRead {
    this.reading.set(digest, (this.reading.get(digest) ?? 0) + 1);
    const fleet = this.fleet?.hold(digest);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      fleet?.release();
      const left = (this.reading.get(digest) ?? 1) - 1;
      if (left > 0) this.reading.set(digest, left);
      else {
        this.reading.delete(digest);
        this.evictor.runIfSkipped(); // it may have skipped this blob while it was being read
      }
    };
    return { release, allowed: fleet?.allowed ?? Promise.resolve(true) };
  }

  /**
   * Registers `fill` as followed until `done` is called: its followers read
   * the committed blob (maybe from a bucket, after the fleet's lease on the
   * fill lapsed) until they have all finished. `done` runs once.
   */
  follow(digest: string, fill: Fill): () => void {
    this.followed.set(digest, fill);
    const fleet = this.fleet?.hold(digest);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      if (this.followed.get(digest) === fill) this.followed.delete(digest);
      fleet?.release();
    };
  }
}
