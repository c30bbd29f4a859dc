/**
 * The local file a fill is written to while clients follow it: what both
 * temp blobs share (FsTempBlob renames it into place at commit, S3TempBlob
 * streams every chunk on to the bucket as well).
 *
 * Appends are queued so each lands at the end even when a caller does not
 * await the previous one, and the chunks waiting when a write starts go to
 * disk together, in one writev: a fill appends every chunk the upstream
 * sends (64-512 KiB), and a thread-pool round trip per chunk cost a cold
 * blob about a fifth of its throughput here (BENCHMARKS.md, issue 17).
 * `written` counts only bytes on disk, so a reader never sees bytes that
 * are not there yet. The first failed write is kept:
 * the file then holds a hole or a torn chunk and can only be discarded.
 *
 * Tested through its users: tests/cache/fs-storage.test.ts and
 * tests/cache/s3-storage.test.ts.
 */
import { type FileHandle, open, rm } from "node:fs/promises";

/**
 * A temp blob dropped without commit or abort (a caller's bug) would get its
 * FileHandle garbage-collected, which Bun, like Node, reports as an uncaught
 * error that ends the process. Holding the handle here prevents that; the
 * handle is closed, the file removed and `dropped` run (an upload cancelled)
 * once the spool is collected.
 */
const collected = new FinalizationRegistry<{ handle: FileHandle; path: string; dropped?: () => void }>(({ handle, path, dropped }) => {
  dropped?.();
  handle
    .close()
    .then(() => rm(path, { force: true }))
    .catch(() => {}); // what is left is deleted at the next start
});

/** Most chunks in one writev: far below any system's IOV_MAX (1024 on Linux). */
const MOST_PER_WRITE = 64;

interface Append {
  chunk: Uint8Array;
  /** Written by an earlier append's writev, with the chunks then waiting. */
  onDisk: boolean;
}

export class SpoolFile {
  private bytes = 0;
  private readonly waiting: Append[] = [];
  private queue: Promise<void> = Promise.resolve();
  private failure: unknown;
  private closed = false;

  private constructor(
    private readonly handle: FileHandle,
    readonly path: string,
    dropped: (() => void) | undefined,
  ) {
    collected.register(this, { handle, path, dropped }, this);
  }

  /** A new file at `path` (which must not exist); `dropped` runs if the spool is collected unsettled. */
  static async create(path: string, dropped?: () => void): Promise<SpoolFile> {
    return new SpoolFile(await open(path, "wx+"), path, dropped);
  }

  /** Bytes on disk so far. */
  get written(): number {
    return this.bytes;
  }

  /**
   * Queues `chunk` at the end of the file, then `then(chunk)` (passing it on,
   * in order); rejects for this caller when either fails, and every later
   * append too.
   */
  append(chunk: Uint8Array, then?: (chunk: Uint8Array) => Promise<void>): Promise<void> {
    const append = { chunk, onDisk: false };
    this.waiting.push(append);
    const done = this.queue.then(() => this.write(append, then));
    this.queue = done.catch(() => {}); // the error belongs to this append's caller; later ones see the failure
    return done;
  }

  /** Resolves once every queued append has run; rejects if one failed. */
  async settled(): Promise<void> {
    await this.queue;
    if (this.failure !== undefined) throw new Error("cannot commit a temp blob after a failed write", { cause: this.failure });
  }

  /** Written bytes at `position` (fewer than `length` only at the current end). */
  async read(position: number, length: number): Promise<Uint8Array> {
    const end = Math.min(position + length, this.bytes);
    if (end <= position) return new Uint8Array(0);
    // Issued before any close: FileHandle.close waits for pending operations, so this read completes.
    const buffer = new Uint8Array(end - position);
    const { bytesRead } = await this.handle.read(buffer, 0, buffer.length, position);
    return buffer.subarray(0, bytesRead);
  }

  /** Flushes to disk: without it a power loss can leave a committed name on blocks never written. */
  sync(): Promise<void> {
    return this.handle.sync();
  }

  /** Closes the file, keeping it on disk (to be renamed). Later appends reject. */
  close(): Promise<void> {
    this.closed = true;
    collected.unregister(this);
    return this.handle.close();
  }

  /**
   * Lets a write in flight finish, then closes and deletes the file. A leftover is deleted at the
   * next start; an error here would only hide the caller's own.
   */
  async remove(): Promise<void> {
    this.closed = true;
    await this.queue;
    collected.unregister(this);
    await this.handle.close().catch(() => {});
    await rm(this.path, { force: true }).catch(() => {});
  }

  /** `append` on disk (written with every chunk waiting then, in one writev), then passed on. */
  private async write(append: Append, then: ((chunk: Uint8Array) => Promise<void>) | undefined): Promise<void> {
    if (this.closed) throw new Error("the temp blob was aborted"); // no point writing what is being deleted
    if (this.failure !== undefined) throw new Error("an earlier write to this temp blob failed", { cause: this.failure });
    try {
      if (!append.onDisk) await this.writeWaiting();
      await then?.(append.chunk);
    } catch (error) {
      this.failure = error;
      throw error;
    }
  }

  /** Appends every waiting chunk (up to MOST_PER_WRITE) at the end, however many calls the system takes. */
  private async writeWaiting(): Promise<void> {
    const batch = this.waiting.splice(0, MOST_PER_WRITE);
    let left = batch.map((append) => append.chunk);
    while (left.length > 0) {
      const { bytesWritten } = await this.handle.writev(left, this.bytes);
      this.bytes += bytesWritten;
      left = after(left, bytesWritten);
    }
    for (const append of batch) append.onDisk = true;
  }
}

/** What is left of `chunks` once their first `count` bytes are written. */
function after(chunks: Uint8Array[], count: number): Uint8Array[] {
  let skip = count;
  let first = 0;
  while (first < chunks.length && skip >= chunks[first]!.length) skip -= chunks[first++]!.length;
  if (first === chunks.length) return [];
  return [chunks[first]!.subarray(skip), ...chunks.slice(first + 1)];
}
