/**
 * Streaming one blob into ONE S3 multipart upload with Bun's client, and S3 failures as plain
 * errors. Split from s3-storage.ts, which decides when an upload may complete.
 */
import type { S3Client } from "bun";

/**
 * 5 MiB is S3's minimum part size (Swift's s3api `min_segment_size` too); two parts in flight.
 * Bun holds a few parts of a fill in memory while they go up, whatever the blob's size (measured
 * ~45 MiB of process growth for a 256 MiB fill and for a 512 MiB one: tests/cache/s3-storage.test.ts).
 */
export const UPLOAD_OPTIONS = { partSize: 5 * 1024 * 1024, queueSize: 2 };

/**
 * How long the bucket may take no bytes of an upload (or not complete it) before it counts as
 * failing. A bucket that hangs must not hang the fill with it: its clients go on from memory
 * (cache/fill.ts) and nothing is committed. Bun's S3 client has no timeout of its own.
 */
export const STALL_TIMEOUT_MS = 30_000;

/**
 * One multipart upload fed chunk by chunk. A chunk is handed over only when Bun reads one
 * (highWaterMark 0), so a slow bucket holds the fill back instead of queueing chunks in memory.
 */
export class MultipartUpload {
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private demand = Promise.withResolvers<void>();
  /** Settles when Bun's upload does; rejects with a domain error. */
  readonly done: Promise<void>;

  constructor(
    client: S3Client,
    key: string,
    private readonly where: string,
    private readonly stallMs = STALL_TIMEOUT_MS,
  ) {
    const body = new ReadableStream<Uint8Array>(
      { start: (controller) => void (this.controller = controller), pull: () => this.demand.resolve() },
      { highWaterMark: 0 },
    );
    this.done = client.write(key, new Response(body), UPLOAD_OPTIONS).then(
      () => undefined,
      (error) => {
        throw s3Error(`upload of ${where}`, error);
      },
    );
    this.done.catch(() => {}); // observed by push, finish and cancel; never an unhandled rejection
  }

  async push(chunk: Uint8Array): Promise<void> {
    await within(Promise.race([this.demand.promise, this.done]), this.stallMs, `upload of ${this.where} took no bytes`);
    this.demand = Promise.withResolvers(); // before enqueue: it may make Bun ask for the next one at once
    await this.use((controller) => controller.enqueue(chunk));
  }

  /** Ends the body: Bun sends the last part and CompleteMultipartUpload (or one PUT, if small). */
  async finish(): Promise<void> {
    await this.use((controller) => controller.close());
    await within(this.done, this.stallMs, `upload of ${this.where} did not complete`);
  }

  /** A failed upload cancels its body: what it then refuses is reported with the upload's own failure. */
  private async use(action: (controller: ReadableStreamDefaultController<Uint8Array>) => void): Promise<void> {
    try {
      action(this.controller);
    } catch (error) {
      await this.done;
      throw s3Error(`upload of ${this.where}`, error);
    }
  }

  /**
   * Errors the body: Bun sends AbortMultipartUpload once its parts in flight are done, and no
   * object appears. Bun's promise rejects before that request is sent (observed on 1.4.5), so a
   * caller cannot wait for it; a store should still expire incomplete uploads (fleet.md §2).
   */
  async cancel(): Promise<void> {
    try {
      this.controller.error(new Error("fill aborted"));
    } catch {
      // already closed by finish(): nothing to cancel
    }
    await within(this.done, this.stallMs, "").catch(() => {}); // a hung bucket must not hang the abort
  }
}

/** `promise`, or a rejection saying `what` did not happen within `ms`; the timer never outlives it. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: Timer | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms / 1000}s`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** An S3 failure as a plain error naming what failed, never the credentials. */
export function s3Error(what: string, error: unknown): Error {
  const code = (error as { code?: unknown }).code;
  const detail = typeof code === "string" ? `${code}: ${(error as Error).message}` : (error as Error).message;
  return new Error(`${what} failed: ${detail}`, { cause: error });
}
