/**
 * Where a fill (fill.ts) keeps the bytes it has received until its readers
 * have them: the temp file, written behind the download, with the newest
 * bytes in memory too so readers keeping up never read the file back. If the
 * disk fails (full, I/O error), the bytes not on disk go to an in-memory
 * window instead, and the fill can no longer be committed. The fill decides
 * when the upstream waits and what happens to the temp file; the spool only
 * holds bytes.
 *
 * Tests: tests/cache/fill-spool.test.ts (writes behind the download, the
 * window after a disk failure); through Fill in tests/cache/fill.test.ts.
 */
import { MemoryPieces } from "./memory-pieces";
import type { TempBlob } from "./blob-storage";

/** Upper bound of the in-memory window used after a disk failure. */
const WINDOW_BYTES = 8 * 1024 * 1024;
/**
 * The newest bytes stay in memory too, so clients keeping up with the
 * download (the usual case) are fed without reading the temp file back;
 * clients further behind read the file.
 */
const RECENT_BYTES = 8 * 1024 * 1024;
/** Bytes handed to the disk but not yet written, at most. Must stay below RECENT_BYTES. */
const MAX_UNWRITTEN = 4 * 1024 * 1024;
/** Largest piece handed to one client at a time (bounds memory per follower). */
const READ_CHUNK = 256 * 1024;

export interface SpoolHooks {
  /** Whether some reader follows the fill from memory: only then are RECENT_BYTES kept there. */
  followed(): boolean;
  /** More bytes reached the temp file (a reader behind the memory can read them now). */
  written(): void;
}

export class FillSpool {
  /** Bytes [0, onDisk) are in the temp file; the later ones only in memory. */
  private onDisk = 0;
  private failed = false;
  /** After a disk failure: the bytes not on disk, until the slowest reader has them. */
  private window = new MemoryPieces();
  /** The newest bytes (RECENT_BYTES), for readers keeping up with the download. */
  private recent = new MemoryPieces();
  private writes: Promise<void>[] = [];
  private unwritten = 0;

  constructor(
    private readonly temp: TempBlob,
    private readonly hooks: SpoolHooks,
  ) {}

  /** The disk failed: the bytes are in the temp file and the window only, and nothing may be committed. */
  get diskFailed(): boolean {
    return this.failed;
  }

  /** Bytes [0, bytesOnDisk) can be read from the temp file. */
  get bytesOnDisk(): number {
    return this.onDisk;
  }

  /**
   * Whether a reader at `position` reads the temp file back: it is behind the
   * bytes kept in memory (a slow client). The file is then the cheaper way to
   * send it the rest (fill.ts hands it over).
   */
  readsFile(position: number): boolean {
    const from = this.recent.from;
    return !this.failed && position < this.onDisk && (from === undefined || position < from);
  }

  /** After a disk failure, the window holds more than its bound: the upstream must wait for the slowest reader. */
  get windowFull(): boolean {
    return this.window.size > WINDOW_BYTES;
  }

  /**
   * Keeps `chunk`, the blob's bytes from `position` on. It is queued for the
   * disk without waiting for it (the temp file keeps writes in order), so
   * reading the upstream, hashing and writing overlap; at most MAX_UNWRITTEN
   * bytes wait. After a disk failure the bytes go to the window instead.
   */
  async append(position: number, chunk: Uint8Array): Promise<void> {
    if (!this.failed) {
      this.remember(position, chunk);
      this.queueWrite(chunk);
      while (this.unwritten > MAX_UNWRITTEN && !this.failed) await this.writes.shift();
      if (!this.failed) return;
    }
    this.window.push(position, chunk);
  }

  /** Lets the window go of the bytes before `position`, the slowest reader's: nobody needs them any more. */
  dropWindowBefore(position: number): void {
    this.window.dropBefore(position);
  }

  /** Up to `length` bytes at `position` (at most READ_CHUNK); empty when none is at hand yet. */
  async read(position: number, length: number): Promise<Uint8Array> {
    const wanted = Math.min(length, READ_CHUNK);
    // A slice of the chunk itself, shared by every client following the fill (no copy).
    const fresh = this.recent.slice(position, wanted);
    if (fresh) return fresh;
    if (position < this.onDisk) return this.temp.read(position, Math.min(wanted, this.onDisk - position));
    return this.window.slice(position, wanted) ?? new Uint8Array(0);
  }

  /** Waits for every queued write; whether the disk failed meanwhile, `diskFailed` says. */
  async flushed(): Promise<void> {
    await Promise.all(this.writes);
    this.writes = [];
  }

  /** Waits until no write is pending, whatever their outcome: only then may the temp file be aborted. */
  async settled(): Promise<void> {
    await Promise.allSettled(this.writes);
  }

  /**
   * Keeps RECENT_BYTES while someone follows the fill; with nobody, only the
   * bytes not on disk yet (the write queue holds them anyway, and a disk
   * failure needs them for the window): 64 abandoned fills must not hold 8 MiB each.
   */
  trimRecent(): void {
    if (!this.hooks.followed()) return this.recent.dropBefore(this.onDisk);
    this.recent.dropOldestWhile((_, held, count) => held > RECENT_BYTES && count > 1);
  }

  /** Lets go of every byte held in memory (the fill is over, or readers go on from the committed blob). */
  clear(): void {
    this.recent.clear();
    this.window.clear();
  }

  private remember(position: number, chunk: Uint8Array): void {
    this.recent.push(position, chunk);
    this.trimRecent();
  }

  private queueWrite(bytes: Uint8Array): void {
    this.unwritten += bytes.length;
    const write = this.temp.write(bytes).then(
      () => {
        this.onDisk += bytes.length;
        this.unwritten -= bytes.length;
        this.hooks.written();
      },
      () => this.diskFailure(),
    );
    this.writes.push(write);
  }

  /** The unwritten tail is still in `recent` (it is larger than MAX_UNWRITTEN): it becomes the window. */
  private diskFailure(): void {
    if (this.failed) return;
    this.failed = true;
    this.recent.dropBefore(this.onDisk);
    this.window = this.recent;
    this.recent = new MemoryPieces();
  }
}
