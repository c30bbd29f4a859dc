/**
 * Sends a byte range of a local file (a cache hit) to a node:http response.
 *
 * Why not sendfile: Bun's node:http has none, and Bun.serve, which has it for
 * `Bun.file` bodies, drops Content-Length from every streamed body (a cache
 * miss; see node-bridge.ts), so the proxy port must be node:http (hits can go
 * to a port of their own instead: cache/sendfile-redirects.ts). Why not
 * `createReadStream(...).pipe(res)`: it allocates every chunk and runs the
 * stream machinery per chunk (~1.6 GB/s here); this loop runs at 0.8–1.1×
 * nginx's sendfile on the same machine (BENCHMARKS.md, scenario 2):
 * - reads are positional, into buffers from a shared pool (no allocation per
 *   chunk);
 * - while a chunk is written, the next one is already being read on Bun's
 *   thread pool, so the disk read and the socket write overlap;
 * - chunks double up to 2 MiB while the client keeps up, but only once it
 *   has taken GROW_AFTER bytes: the kernel's socket buffers take the first
 *   MiBs of any client at once, so before that a slow client looks fast.
 *   Growing from the first chunk gave 64 slow clients (1 MiB/s) of a cached
 *   blob 2 MiB chunks, and a peak of 210 MB against 130 MB with 64 KiB
 *   chunks only (scenario 5, 256 MiB blob, same session). A client whose
 *   socket took long to drain is slow: it gets 64 KiB chunks and no
 *   read-ahead, so while it waits it holds almost nothing. Backpressure
 *   alone says nothing: a fast client on loopback fills the socket too, and
 *   drains it in microseconds.
 * `res.write` copies what the socket does not take at once into the server's
 * own buffer, so a buffer could be reused as soon as it returns; it is kept
 * until the drain all the same, to charge that backlog to the budget below.
 */
import { open, type FileHandle } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import type { FileBody } from "../util/file-response";

const MIN_CHUNK = 64 * 1024;
const MAX_CHUNK = 2 * 1024 * 1024;
/**
 * Bytes a client takes in MIN_CHUNKs before its chunks may grow: more than
 * Linux's default socket buffers hold (tcp_wmem 4 MiB plus what the
 * receiver's window autotunes to), which a 1 MiB/s client fills at once.
 */
export const GROW_AFTER = 16 * 1024 * 1024;
/** A drain that takes longer than this marks the client as slow. */
const SLOW_DRAIN_MS = 50;
/**
 * Bytes of buffers in use (being read, written or waiting for a drain) across
 * all responses, beyond which a response gets MIN_CHUNK buffers only; also
 * the most the pool keeps idle. Memory is thus bounded by twice this plus a
 * few MIN_CHUNKs per client, however many clients there are.
 */
const LARGE_BUDGET = 16 * 1024 * 1024;

interface Chunk {
  buffer: Buffer;
  bytes: number;
}

/** Resolves once the response can take more, or rejects once the client has gone. */
export function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      if (res.destroyed) reject(new Error("client closed the connection"));
      else resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

/** Rejects once the client has gone; `stop` lets go of the response. */
function closed(res: ServerResponse): { promise: Promise<never>; stop(): void } {
  let reject: (error: Error) => void = () => {};
  const promise = new Promise<never>((_, fail) => (reject = fail));
  promise.catch(() => {}); // only raced while waiting: nobody may be listening when it fires
  const gone = () => reject(new Error("client closed the connection"));
  // It may have closed already, while the file was being opened: its "close" has been and gone.
  if (res.destroyed || res.closed) gone();
  res.once("close", gone);
  return { promise, stop: () => res.off("close", gone) };
}

/** One per process (the server edge makes it): its buffer pool and budget are shared by every response. */
export class FileSender {
  private readonly pool = new Map<number, Buffer[]>();
  private pooled = 0;
  private lent = 0;

  /**
   * Writes bytes `start..end` (inclusive) of the file to `res`, whose head is
   * already out, and ends it. A growing file (a fill's temp file) is read only
   * as far as its growth allows, waiting for more in between. Rejects if the
   * file is shorter than the range, a read fails, the growth fails or the
   * client leaves; the caller then cuts the connection, so a client never
   * takes a short body for a whole one. Closes the file, a handed-in handle too.
   */
  async send(res: ServerResponse, body: Omit<FileBody, "done">, onBytes: (count: number) => void): Promise<void> {
    const { path, start, end, growth } = body;
    const file = body.handle ?? (await open(path, "r"));
    const left = growth && closed(res);
    let pending: Promise<Chunk> | undefined;
    try {
      let position = start;
      const stop = end + 1;
      let size = MIN_CHUNK;
      let slow = false;
      // The next read, if any byte after `position` may be read yet.
      const readNext = () => {
        const limit = growth ? Math.min(growth.readable(position), stop) : stop;
        return limit > position ? this.readAt(file, position, limit - position, size) : undefined;
      };
      pending = readNext();
      while (position < stop) {
        if (!pending) {
          // Ahead of a growing file: a client leaving meanwhile must not wait for the fill.
          await Promise.race([growth!.grown(), left!.promise]);
          pending = readNext();
          continue;
        }
        const chunk = await pending;
        pending = undefined;
        if (chunk.bytes === 0) {
          this.giveBack(chunk.buffer);
          throw new Error(`${path} ended at byte ${position}, before ${stop}`);
        }
        position += chunk.bytes;
        // Read ahead only for a client that keeps up: a slow one would just hold the buffer.
        if (position < stop && !slow) pending = readNext();
        if (res.destroyed) {
          this.giveBack(chunk.buffer);
          throw new Error("client closed the connection");
        }
        const bytes = chunk.buffer.subarray(0, chunk.bytes);
        const more = position < stop;
        const accepted = more ? res.write(bytes) : (res.end(bytes), true);
        onBytes(chunk.bytes);
        if (accepted) {
          this.giveBack(chunk.buffer);
          slow = false;
        } else {
          // What the socket did not take waits in the server's buffer until it drains: the chunk
          // stays charged to the budget until then, so that backlog is bounded by it too.
          const waitStart = performance.now();
          await drained(res).finally(() => this.giveBack(chunk.buffer));
          slow = performance.now() - waitStart > SLOW_DRAIN_MS;
        }
        if (!more) break;
        size = slow || position - start < GROW_AFTER ? MIN_CHUNK : Math.min(size * 2, MAX_CHUNK);
        pending ??= readNext();
      }
    } finally {
      left?.stop();
      // A read still in flight must finish before its file is closed.
      if (pending) await pending.then((chunk) => this.giveBack(chunk.buffer)).catch(() => {});
      await file.close();
    }
  }

  /** A buffer of `wanted` bytes, or of MIN_CHUNK when the budget for large ones is spent. */
  private take(wanted: number): Buffer {
    const size = wanted > MIN_CHUNK && this.lent + wanted > LARGE_BUDGET ? MIN_CHUNK : wanted;
    this.lent += size;
    const reused = this.pool.get(size)?.pop();
    if (reused) {
      this.pooled -= size;
      return reused;
    }
    return Buffer.allocUnsafeSlow(size);
  }

  private giveBack(buffer: Buffer): void {
    this.lent -= buffer.length;
    if (this.pooled + buffer.length > LARGE_BUDGET) return;
    this.pooled += buffer.length;
    const list = this.pool.get(buffer.length);
    if (list) list.push(buffer);
    else this.pool.set(buffer.length, [buffer]);
  }

  private async readAt(file: FileHandle, position: number, length: number, size: number): Promise<Chunk> {
    const buffer = this.take(size);
    try {
      const { bytesRead } = await file.read(buffer, 0, Math.min(length, buffer.length), position);
      return { buffer, bytes: bytesRead };
    } catch (error) {
      this.giveBack(buffer);
      throw error;
    }
  }
}
