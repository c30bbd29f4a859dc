/**
 * One upstream download of a blob into a temp file, followed live by every
 * client that asked for it ("coalescing": N concurrent cold pulls make one
 * upstream request, and each client streams bytes as they arrive, not after
 * the download ends).
 *
 * - The download runs at the upstream's pace, independent of any client, and
 *   goes on when clients leave, so one slow or vanished client never stalls
 *   or kills the fill for the others. Configured not to, it stops the moment
 *   its last reader leaves: the upstream body is cancelled at once (a stalled
 *   upstream must not keep it alive) and the temp file removed.
 * - Bytes are hashed on the way in; the blob is committed under its digest
 *   only if size and sha256 match. Until then every reader holds back the
 *   last byte it asked for (the blob's last byte, or its range's), so a
 *   client can never receive a complete body, whole or 206, that turns out to
 *   be wrong: on a mismatch or a cut upstream its connection is aborted
 *   instead.
 * - If the disk fails mid-fill (full, I/O error), the bytes still reach the
 *   clients from a small in-memory window, whose size holds the upstream back
 *   to the slowest reader; nothing is committed. A commit that fails (the
 *   store, a bucket, went away) likewise serves the verified bytes uncommitted.
 *
 * The bytes themselves (temp file, memory, window) are held by fill-spool.ts.
 * Tests: tests/cache/fill.test.ts; clients leaving, stalls and kill -9 through
 * the binary in tests/integration/cache/fill.test.ts.
 */
import { open } from "node:fs/promises";
import { FillSpool } from "./fill-spool";
import type { BlobStorage, StoredBlob, TempBlob } from "./blob-storage";
import type { FillInProgress } from "./coordination";
import { IN_THREAD, type Hashing } from "./hashing";
import type { FileGrowth, Handoff } from "../util/file-response";

/**
 * filling → committing → done, or → failed. Once verified ("committing")
 * readers get every byte while the temp file is synced and renamed (reads
 * keep working across the commit). After a disk failure a verified fill is
 * "served" instead: its readers finish from the temp file and the memory
 * window, and nothing is committed.
 */
export type FillState = "filling" | "committing" | "done" | "served" | "failed";

export interface FillOptions {
  digest: string;
  /** From the upstream's Content-Length, when it sent one. */
  size: number | undefined;
  body: ReadableStream<Uint8Array>;
  temp: TempBlob;
  storage: BlobStorage;
  /** Keep downloading when the last client has gone (the next pull is then a hit). */
  continueWithoutReaders: boolean;
  /** Where the bytes are hashed; the cache hands its worker thread (hashing-thread.ts), else this thread. */
  hashing?: Hashing;
  /** Called once with the outcome; a committed fill has been renamed into place. */
  onSettled: (outcome: { committed: boolean; size: number; error?: Error }) => void;
  /** Called when a settled fill has no reader left (it can be forgotten). */
  onIdle?: () => void;
}

interface Reader {
  position: number;
  /** Handed to the server edge, which sends it the temp file as it grows (see `handOver`). */
  onFile?: boolean;
}

export class Fill implements FillInProgress {
  readonly digest: string;
  readonly size: number | undefined;
  state: FillState = "filling";
  /** Bytes received, stored and offered to readers so far. */
  private written = 0;
  private readonly spool: FillSpool;
  private failure: Error | undefined;
  private readonly readers = new Set<Reader>();
  /** Readers sent the temp file by the edge: they hold no memory of the fill's. */
  private fileReaders = 0;
  private wake: (() => void)[] = [];
  private stored: Promise<StoredBlob | undefined> | undefined;
  private upstream: { cancel(): Promise<void> } | undefined;
  private stopped = false;

  constructor(private readonly options: FillOptions) {
    this.digest = options.digest;
    this.size = options.size;
    this.spool = new FillSpool(options.temp, { followed: () => this.readers.size > this.fileReaders, written: () => this.notify() });
  }

  get readerCount(): number {
    return this.readers.size;
  }

  /** Starts the download; the returned promise settles when the fill does (never rejects). */
  start(): Promise<void> {
    return this.pump().catch(() => undefined);
  }

  /**
   * A stream of bytes `start`..`end` (inclusive) following the fill. With an
   * accepted `handoff` the stream may end early and leave the rest to the
   * handoff's taker as a local file, which must call its `done` when finished
   * (the reader counts as one until then): once the blob is committed, or
   * before, when the reader has fallen behind the bytes kept in memory.
   */
  read(start: number, end: number, handoff?: Handoff): ReadableStream<Uint8Array> {
    const reader: Reader = { position: start };
    this.readers.add(reader);
    let fileTried = false;
    let storedStream: { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(): Promise<void> } | undefined;
    const leave = () => {
      if (!this.readers.delete(reader)) return;
      if (reader.onFile) this.fileReaders--;
      this.notify();
      if (this.readers.size > 0) return;
      if (this.state === "done" || this.state === "failed") this.options.onIdle?.();
      if (this.state === "filling" && !this.options.continueWithoutReaders) this.stop();
      if (this.state === "filling") this.spool.trimRecent();
      if (this.state === "served") void this.options.temp.abort().catch(() => undefined);
    };
    return new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          for (;;) {
            if (reader.position > end) {
              // Every byte is out (the client's Content-Length tells it the body is whole), but the
              // stream ends only once the blob is committed: a reader that finished then knows the
              // next request is a hit (pre-warming reports a blob as cached when its read ends).
              if (this.state === "committing") {
                await this.changed();
                continue;
              }
              leave();
              return controller.close();
            }
            if (this.state === "failed") {
              leave();
              return controller.error(this.failure);
            }
            if (this.state === "done") {
              // The temp file is gone; the rest comes from the committed blob.
              const stored = await this.openStored();
              if (handoff?.accepted && stored?.path && !storedStream) {
                handoff.rest = { path: stored.path, start: reader.position, end, done: leave };
                return controller.close();
              }
              storedStream ??= stored?.stream(reader.position, end).getReader();
              if (!storedStream) {
                leave();
                return controller.error(new Error(`committed blob ${this.digest} vanished`));
              }
              const { value, done } = await storedStream.read();
              if (done || !value) reader.position = end + 1;
              else {
                reader.position += value.length;
                controller.enqueue(value);
                return;
              }
              continue;
            }
            const available = this.deliverable(end);
            if (reader.position < available) {
              if (handoff?.accepted && !fileTried && this.spool.readsFile(reader.position)) {
                fileTried = true;
                if (await this.handOver(reader, end, handoff, leave)) return controller.close();
              }
              const bytes = await this.spool.read(reader.position, available - reader.position);
              if (bytes.length > 0) {
                reader.position += bytes.length;
                this.notify();
                controller.enqueue(bytes);
                return;
              }
            }
            await this.changed();
          }
        },
        cancel: () => {
          leave();
          void storedStream?.cancel().catch(() => undefined);
        },
      },
      { highWaterMark: 0 },
    );
  }

  /**
   * Gives the rest of `reader`'s bytes to the handoff's taker as the temp
   * file, opened now and read as far as `fileReadable` allows. A slow reader
   * otherwise reads the file back through this stream, a new 256 KiB buffer
   * per read that the collector frees late; the edge sends it from pooled
   * buffers instead, as it sends a hit (server/file-sender.ts), so a slow
   * follower costs the same while the fill runs as after it (BENCHMARKS.md,
   * issue 17). False when the file cannot be opened any more (committed or
   * removed meanwhile) or the reader has left: the stream goes on.
   */
  private async handOver(reader: Reader, end: number, handoff: Handoff, leave: () => void): Promise<boolean> {
    const path = this.options.temp.path;
    if (path === undefined) return false;
    const handle = await open(path, "r").catch(() => undefined);
    if (!handle) return false;
    if (!this.readers.has(reader)) {
      await handle.close().catch(() => {}); // an unclosed handle, once collected, ends the process
      return false;
    }
    reader.onFile = true;
    this.fileReaders++;
    this.spool.trimRecent();
    const growth: FileGrowth = {
      readable: (position) => {
        reader.position = position;
        return this.fileReadable(position, end);
      },
      grown: () => this.changed(),
    };
    handoff.rest = { path, handle, start: reader.position, end, done: leave, growth };
    return true;
  }

  /**
   * How far a reader of the temp file at `position` may read for a range
   * ending at `end` (inclusive): the bytes on disk, holding back its last
   * byte until the blob is verified, as `deliverable` does. After a disk
   * failure the bytes not on disk are only in memory, which a file reader
   * cannot reach: it fails there (its client is cut, and retries).
   */
  private fileReadable(position: number, end: number): number {
    if (this.state === "failed") throw this.failure;
    const onDisk = this.spool.bytesOnDisk;
    const bound = Math.min(onDisk, this.state === "filling" ? end : end + 1);
    if (position >= bound && position >= onDisk && this.spool.diskFailed) {
      throw new Error("the disk failed during the fill: the rest of the blob is not in the temp file");
    }
    return bound;
  }

  /**
   * A fill joined after a disk failure could miss bytes the window has let go,
   * and a stopped one is about to fail: such clients pass through.
   */
  get joinable(): boolean {
    return (this.state === "filling" && !this.spool.diskFailed && !this.stopped) || this.state === "committing" || this.state === "done";
  }

  /**
   * Where a reader of bytes up to `end` (inclusive) may read to (exclusive):
   * everything written so far, except, while the blob is unverified, the
   * reader's own last byte. Holding back only the blob's last byte would let
   * `Range: bytes=0-9` complete with bytes the digest check rejects later.
   */
  private deliverable(end: number): number {
    return Math.min(this.written, this.state === "filling" ? end : end + 1);
  }

  private async pump(): Promise<void> {
    const { body, digest } = this.options;
    const hash = (this.options.hashing ?? IN_THREAD).start();
    const upstream = body.getReader();
    this.upstream = upstream;
    try {
      for (;;) {
        const { value, done } = await upstream.read();
        // stop() cancels the upstream, which ends a pending read as if the body were complete.
        if (this.stopped) throw new Error("every client left and the fill was not configured to continue");
        if (done) break;
        const behind = hash.update(value); // hashed elsewhere while the bytes are stored and sent
        await this.store(value);
        if (behind) await behind;
        this.written += value.length;
        if (this.size !== undefined && this.written > this.size) throw new Error(`upstream sent more than its ${this.size} bytes`);
        this.notify();
      }
      if (this.size !== undefined && this.written !== this.size) {
        throw new Error(`upstream sent ${this.written} of ${this.size} bytes`);
      }
      const actual = `sha256:${await hash.digest()}`;
      if (actual !== digest) throw new Error(`digest mismatch: upstream content hashes to ${actual}`);
      await this.spool.flushed();
      await this.settleVerified();
    } catch (error) {
      hash.drop();
      await upstream.cancel().catch(() => undefined);
      await this.spool.settled();
      await this.fail(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /**
   * Hands the chunk to the spool. After a disk failure the window is the only
   * copy of the bytes not on disk: the upstream waits until the slowest reader
   * has made room in it.
   */
  private async store(chunk: Uint8Array): Promise<void> {
    await this.spool.append(this.written, chunk);
    if (!this.spool.diskFailed) return;
    for (;;) {
      // Readers of the file never read the window (fileReadable): they are not waited for.
      const fromMemory = [...this.readers].filter((r) => !r.onFile);
      this.spool.dropWindowBefore(Math.min(...fromMemory.map((r) => r.position)));
      if (!this.spool.windowFull || fromMemory.length === 0) break;
      await this.changed();
    }
  }

  /** Ends the download now, even while the upstream sends nothing: the pending read returns at once. */
  private stop(): void {
    this.stopped = true;
    void this.upstream?.cancel().catch(() => undefined);
  }

  private async settleVerified(): Promise<void> {
    if (this.spool.diskFailed) return this.serveUncommitted(new Error("the disk failed during the fill"));
    this.state = "committing";
    this.notify();
    try {
      await this.options.temp.commit(this.digest);
    } catch (error) {
      // The bytes were verified: a store that refuses them (a bucket gone at the last moment)
      // costs the cache this blob, not the clients their pull.
      return this.serveUncommitted(new Error(`commit failed: ${(error as Error).message}`, { cause: error }));
    }
    this.state = "done";
    this.spool.clear(); // readers continue from the committed file
    this.notify();
    this.options.onSettled({ committed: true, size: this.written });
  }

  /** Readers finish from the spool (temp blob and memory); nothing is committed. */
  private async serveUncommitted(error: Error): Promise<void> {
    this.state = "served";
    this.notify();
    if (this.readers.size === 0) await this.options.temp.abort().catch(() => undefined);
    this.options.onSettled({ committed: false, size: this.written, error });
  }

  private async fail(error: Error): Promise<void> {
    this.failure = error;
    this.state = "failed";
    this.spool.clear();
    this.notify();
    await this.options.temp.abort().catch(() => undefined);
    this.options.onSettled({ committed: false, size: this.written, error });
  }

  private openStored(): Promise<StoredBlob | undefined> {
    this.stored ??= this.options.storage.open(this.digest);
    return this.stored;
  }

  private notify(): void {
    const waiting = this.wake;
    this.wake = [];
    for (const resolve of waiting) resolve();
  }

  private changed(): Promise<void> {
    return new Promise((resolve) => this.wake.push(resolve));
  }
}
