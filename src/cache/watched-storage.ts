/**
 * The blob storage as operators see it: `/health` says whether it works and
 * why not, a metric counts its failures. A decorator around the real store
 * (open-cache.ts wraps every one), so neither store nor cache keeps score.
 *
 * The state is that of the last operation that reached the store: a bucket
 * that went down turns "failing" on the next pull, and "up" again on the
 * first one that succeeds, with no probe of its own. Failures the callers
 * survive count too (a hit that fell back to the upstream, a fill that served
 * its clients and committed nothing): that is what an operator must see.
 * A bucket that did not answer at start is wrapped all the same, failing:
 * the first operation that reaches it turns the node's cache on again.
 */
import type { BlobStorage, StoredBlob, TempBlob } from "./blob-storage";

export interface StorageStatus {
  storage: "filesystem" | "s3";
  state: "up" | "failing";
  /** The last failure, while failing: names the object or directory, never a credential. */
  reason?: string;
  /** Operations that failed since start (a metric's counter). */
  failures: number;
}

export class WatchedStorage implements BlobStorage {
  readonly shared: boolean;
  private current: StorageStatus;

  constructor(
    private readonly inner: BlobStorage,
    storage: StorageStatus["storage"],
    /** Why the store already failed before it was wrapped (a bucket down at start): failing until an operation succeeds. */
    failedAtStart?: string,
  ) {
    this.shared = inner.shared ?? false;
    this.current = failedAtStart === undefined ? { storage, state: "up", failures: 0 } : WatchedStorage.unusable(storage, failedAtStart);
  }

  /** A store that could not even be opened: failing from the start, with why. */
  static unusable(storage: StorageStatus["storage"], reason: string): StorageStatus {
    return { storage, state: "failing", reason, failures: 1 };
  }

  get status(): StorageStatus {
    return { ...this.current };
  }

  async open(digest: string): Promise<StoredBlob | undefined> {
    const stored = await this.watch(this.inner.open(digest));
    // A bucket can fail in the middle of a hit too. A local file is not wrapped: blob hits are
    // served by its path, and the wrapper's extra stream cost a fifth of the cached-manifest GET
    // rate (bench scenario 4b), for a failure a local disk hardly has mid-read.
    if (!stored || stored.path !== undefined) return stored;
    return { ...stored, stream: (start, end) => this.watchStream(() => stored.stream(start, end)) };
  }

  async begin(digest?: string): Promise<TempBlob> {
    const temp = await this.watch(this.inner.begin(digest));
    return {
      path: temp.path,
      write: (chunk) => this.watch(temp.write(chunk), false),
      read: (position, length) => temp.read(position, length),
      commit: (committed) => this.watch(temp.commit(committed)),
      abort: () => temp.abort(),
    };
  }

  delete(digest: string): Promise<void> {
    return this.watch(this.inner.delete(digest));
  }

  list(): AsyncIterable<{ digest: string; size: number }> {
    return this.inner.list();
  }

  /**
   * The same bytes at the consumer's pace (one chunk per pull), a failure recorded on its way.
   * Opened at the first pull: a file gone since the lookup fails there (Bun throws at once), not
   * in the caller's hands.
   */
  private watchStream(open: () => ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
    let reader: { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(reason?: unknown): Promise<void> } | undefined;
    return new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          try {
            const source = (reader ??= open().getReader());
            const { value, done } = await source.read();
            if (done || !value) controller.close();
            else controller.enqueue(value);
          } catch (error) {
            this.failed(error);
            controller.error(error);
          }
        },
        cancel: (reason) => reader?.cancel(reason),
      },
      { highWaterMark: 0 },
    );
  }

  /**
   * Records how `operation` ended and hands on its outcome unchanged. A
   * successful write says little (it may only have reached the local spool),
   * so only failures of writes count.
   */
  private async watch<T>(operation: Promise<T>, successMeansUp = true): Promise<T> {
    try {
      const result = await operation;
      if (successMeansUp && this.current.state !== "up") this.current = { ...this.current, state: "up", reason: undefined };
      return result;
    } catch (error) {
      this.failed(error);
      throw error;
    }
  }

  private failed(error: unknown): void {
    this.current = { ...this.current, state: "failing", reason: (error as Error).message, failures: this.current.failures + 1 };
  }
}
