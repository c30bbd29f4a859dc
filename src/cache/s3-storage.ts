/**
 * The S3-compatible `BlobStorage` (issue 16), on Bun's built-in S3 client: committed blobs at
 * `<prefix>blobs/<algorithm>/<encoded>` in one bucket, shared by every node of a fleet.
 *
 * A blob must appear under its digest only once verified, and S3 has no rename. So a fill whose
 * digest is known at `begin(digest)` streams into ONE multipart upload straight to the digest's
 * key, and that upload's body stays open until `commit`: Bun completes a multipart upload only
 * when its body stream ends, and sends AbortMultipartUpload when the stream errors, so `abort`
 * errors it and no object appears (shared/research/fleet.md §2). `file.writer().end(error)` would
 * not do: it still completes the upload, truncated (oven-sh/bun#33681, #43134).
 *
 * Followers of a fill read what was written from a local spool file, never from memory. Without
 * a digest at `begin()` the spool is all there is, and `commit` uploads it from disk.
 */
import { randomUUID } from "node:crypto";
import { type FileHandle, mkdir, open, readdir, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { S3Client } from "bun";
import { isDigest } from "../oci/reference";
import { MultipartUpload, s3Error, STALL_TIMEOUT_MS, UPLOAD_OPTIONS, within } from "./s3-upload";
import type { BlobStorage, StoredBlob, TempBlob } from "./blob-storage";

export interface S3StorageOptions {
  endpoint: string;
  bucket: string;
  /** Required in practice: Bun's default `auto` is refused by most stores other than R2 (Swift: AuthorizationHeaderMalformed). */
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Key prefix inside the bucket; a `/` is added when missing ("docxy" → "docxy/blobs/…"). */
  prefix?: string;
  /** Local directory for the spool files of fills in progress (emptied at open). */
  spoolDir: string;
  /**
   * How long a request may hang before the bucket counts as failing: the first listing and each
   * HEAD wait this long, an upload this long per stall (STALL_TIMEOUT_MS); tests shorten it.
   */
  timeoutMs?: { request: number; stall: number };
}

/** A HEAD or a one-key listing answers in milliseconds; beyond this the bucket is in trouble. */
const REQUEST_TIMEOUT_MS = 10_000;

export class S3Storage implements BlobStorage {
  /** Every node of a fleet commits here: what one node's index lacks, another may have stored. */
  readonly shared = true;
  private readonly prefix: string;

  private constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    /** For messages: the endpoint's origin only, as its URL could carry userinfo. */
    private readonly origin: string,
    prefix: string,
    private readonly spoolDir: string,
    private readonly timeoutMs: { request: number; stall: number },
  ) {
    this.prefix = prefix === "" || prefix.endsWith("/") ? prefix : `${prefix}/`;
  }

  /** Prepares the spool and lists the bucket once; throws a plain message when either is unusable or the bucket does not answer in time. */
  static async open(options: S3StorageOptions): Promise<S3Storage> {
    const storage = await S3Storage.prepare(options);
    await storage.reach();
    return storage;
  }

  /**
   * Prepares the spool only: throws when it is unusable, but not when the bucket is down, so a
   * node started while its bucket is away uses it once it answers (open-cache.ts).
   */
  static async prepare(options: S3StorageOptions): Promise<S3Storage> {
    const storage = S3Storage.unspooled(options);
    try {
      await mkdir(storage.spoolDir, { recursive: true });
      // A leftover spool is a fill that died with the process: its upload was never completed.
      for (const leftover of await readdir(storage.spoolDir)) await rm(join(storage.spoolDir, leftover), { force: true });
    } catch (error) {
      throw new Error(`spool directory ${storage.spoolDir} is not usable: ${(error as Error).message}`, { cause: error });
    }
    return storage;
  }

  /** Whether the bucket answers, touching nothing local (`check-config`, the start policy): throws as `reach` does. */
  static probe(options: Omit<S3StorageOptions, "spoolDir">): Promise<void> {
    return S3Storage.unspooled({ ...options, spoolDir: "" }).reach();
  }

  private static unspooled(options: S3StorageOptions): S3Storage {
    const { endpoint, bucket, region, accessKeyId, secretAccessKey } = options;
    const client = new S3Client({ endpoint, bucket, region, accessKeyId, secretAccessKey });
    const timeoutMs = options.timeoutMs ?? { request: REQUEST_TIMEOUT_MS, stall: STALL_TIMEOUT_MS };
    return new S3Storage(client, bucket, new URL(endpoint).origin, options.prefix ?? "", resolve(options.spoolDir), timeoutMs);
  }

  /** Lists one key under the prefix: the cheapest request that proves the bucket exists and the keys work. */
  async reach(): Promise<void> {
    try {
      await within(this.client.list({ prefix: this.prefix, maxKeys: 1 }), this.timeoutMs.request, "no answer");
    } catch (error) {
      throw s3Error(`listing bucket ${this.bucket} at ${this.origin}`, error);
    }
  }

  async open(digest: string): Promise<StoredBlob | undefined> {
    const key = this.key(digest);
    const file = this.client.file(key);
    let size: number;
    try {
      // One HEAD; the bytes come by ranged GETs, as the client asks.
      ({ size } = await within(file.stat(), this.timeoutMs.request, "no answer"));
    } catch (error) {
      if ((error as { code?: unknown }).code === "NoSuchKey") return undefined;
      throw s3Error(`HEAD ${this.where(key)}`, error);
    }
    return {
      size,
      stream: (start, end) =>
        // An empty range of an empty blob is no request at all: S3 answers 416 to any Range on 0 bytes.
        end < start ? new ReadableStream({ start: (controller) => controller.close() }) : namedErrors(file.slice(start, end + 1).stream(), `GET ${this.where(key)}`),
    };
  }

  /**
   * With `digest`, bytes stream to the bucket while they are written; without, they upload at
   * `commit` (the blob and manifest caches always pass it).
   */
  async begin(digest?: string): Promise<TempBlob> {
    const key = digest === undefined ? undefined : this.key(digest); // an invalid digest throws before anything is opened
    const spool = join(this.spoolDir, randomUUID());
    const handle = await open(spool, "wx+");
    const upload = key === undefined ? undefined : new MultipartUpload(this.client, key, this.where(key), this.timeoutMs.stall);
    return new S3TempBlob(handle, spool, digest, upload, {
      upload: (key) => this.client.write(key, Bun.file(spool), UPLOAD_OPTIONS),
      key: (committed) => this.key(committed),
      where: (key) => this.where(key),
      read: (key, start, end) =>
        this.client
          .file(key)
          .slice(start, end)
          .bytes()
          .catch((error) => {
            throw s3Error(`GET ${this.where(key)}`, error);
          }),
    });
  }

  async delete(digest: string): Promise<void> {
    const key = this.key(digest);
    await this.client.delete(key).catch((error) => {
      throw s3Error(`DELETE ${this.where(key)}`, error);
    });
  }

  /** ListObjectsV2 page by page (1000 keys each): memory stays flat however large the bucket. */
  async *list(): AsyncIterable<{ digest: string; size: number }> {
    const root = `${this.prefix}blobs/`;
    let continuationToken: string | undefined;
    do {
      const page = await this.client.list({ prefix: root, continuationToken }).catch((error) => {
        throw s3Error(`listing ${this.where(root)}`, error);
      });
      for (const { key, size } of page.contents ?? []) {
        const digest = key.slice(root.length).replace("/", ":");
        if (isDigest(digest) && size !== undefined) yield { digest, size }; // anything else is not ours
      }
      continuationToken = page.isTruncated ? page.nextContinuationToken : undefined;
    } while (continuationToken);
  }

  /** The digest grammar has no `/`, so a validated digest names exactly one key under `blobs/`. */
  private key(digest: string): string {
    if (!isDigest(digest)) throw new Error(`invalid digest: ${JSON.stringify(digest)}`);
    const [algorithm, encoded] = digest.split(":", 2) as [string, string];
    return `${this.prefix}blobs/${algorithm}/${encoded}`;
  }

  private where(key: string): string {
    return `s3://${this.bucket}/${key}`;
  }
}

interface Bucket {
  upload(key: string): Promise<number>;
  key(digest: string): string;
  where(key: string): string;
  read(key: string, start: number, end: number): Promise<Uint8Array>;
}

/**
 * A temp blob dropped without commit or abort (a caller's bug) would get its FileHandle
 * garbage-collected, which Bun reports as an uncaught error that ends the process, and would
 * leave its upload open for ever. Holding both here prevents that (as in fs-storage.ts).
 */
const dropped = new FinalizationRegistry<{ handle: FileHandle; spool: string; upload: MultipartUpload | undefined }>(
  ({ handle, spool, upload }) => {
    void upload?.cancel();
    handle
      .close()
      .then(() => rm(spool, { force: true }))
      .catch(() => {}); // what is left is deleted at the next open
  },
);

/**
 * One fill: every chunk goes to the spool, then to the upload. Writes are queued so each appends
 * at the end even when a caller does not await the previous one; `written` counts only bytes on
 * the spool, so a reader never sees bytes that are not there yet.
 *
 * Only a spool that cannot be written fails a write. An upload that fails (the bucket down or
 * hanging mid-fill) costs the bucket this blob, not the fill: the spool still holds every byte,
 * so the fill's readers, other nodes following it included, go on from it, and `commit` reports
 * the upload's failure. Failing the write instead made the fill refuse new readers (a disk
 * failure, cache/fill.ts), which cut the clients of nodes that were about to follow it.
 */
class S3TempBlob implements TempBlob {
  private written = 0;
  private writes: Promise<void> = Promise.resolve();
  private writeError: unknown;
  /** Why the upload failed; later chunks go to the spool only. */
  private uploadError: unknown;
  private committing: Promise<void> | undefined;
  /** The key, once the object is complete; the spool goes away then. */
  private committed: string | undefined;
  private aborting: Promise<void> | undefined;

  constructor(
    private readonly handle: FileHandle,
    private readonly spool: string,
    private readonly digest: string | undefined,
    private readonly upload: MultipartUpload | undefined,
    private readonly bucket: Bucket,
  ) {
    dropped.register(this, { handle, spool, upload }, this);
  }

  write(chunk: Uint8Array): Promise<void> {
    // Checked at the call, not when the queue reaches it: a write issued before commit() is part of the blob.
    if (this.committing || this.aborting) return Promise.reject(new Error("the temp blob is already committed or aborted"));
    const done = this.writes.then(() => this.append(chunk));
    this.writes = done.catch(() => {}); // the error belongs to this write's caller; later writes see writeError
    return done;
  }

  async read(position: number, length: number): Promise<Uint8Array> {
    const end = Math.min(position + length, this.written);
    if (end <= position) return new Uint8Array(0);
    // A follower still behind when the fill commits goes on from the committed object.
    if (this.committed !== undefined) return this.bucket.read(this.committed, position, end);
    if (this.aborting) throw new Error("the temp blob was aborted");
    // Issued before any close: FileHandle.close waits for pending operations, so this read completes.
    const buffer = new Uint8Array(end - position);
    const { bytesRead } = await this.handle.read(buffer, 0, buffer.length, position);
    return buffer.subarray(0, bytesRead);
  }

  async commit(digest: string): Promise<void> {
    if (this.committing || this.aborting) throw new Error("the temp blob is already committed or aborted");
    if (this.digest !== undefined && digest !== this.digest) {
      throw new Error(`cannot commit a fill begun for ${this.digest} as ${digest}`);
    }
    this.committing = this.complete(this.bucket.key(digest));
    await this.committing;
  }

  abort(): Promise<void> {
    this.aborting ??= this.discard();
    return this.aborting;
  }

  private async append(chunk: Uint8Array): Promise<void> {
    if (this.aborting) throw new Error("the temp blob was aborted");
    if (this.writeError !== undefined) throw new Error("an earlier write to this temp blob failed", { cause: this.writeError });
    try {
      for (let offset = 0; offset < chunk.length; ) {
        const { bytesWritten } = await this.handle.write(chunk, offset, chunk.length - offset, this.written + offset);
        offset += bytesWritten;
      }
      this.written += chunk.length;
    } catch (error) {
      this.writeError = error;
      throw error;
    }
    if (this.upload && this.uploadError === undefined) {
      await this.upload.push(chunk).catch((error: unknown) => {
        this.uploadError = error;
        void this.upload!.cancel(); // no object may appear from what was sent
      });
    }
  }

  private async complete(key: string): Promise<void> {
    await this.writes;
    if (this.writeError !== undefined) throw new Error("cannot commit a temp blob after a failed write", { cause: this.writeError });
    if (this.uploadError !== undefined) throw this.uploadError;
    if (this.upload) await this.upload.finish();
    else {
      await this.bucket.upload(key).catch((error) => {
        throw s3Error(`upload of ${this.bucket.where(key)}`, error);
      });
    }
    this.committed = key;
    await this.removeSpool();
  }

  private async discard(): Promise<void> {
    if (this.committing && (await this.committing.then(() => true, () => false))) return; // nothing left to discard
    await this.upload?.cancel(); // first: a write waiting for the upload to want more is released
    await this.writes;
    await this.removeSpool();
  }

  /** A leftover spool file is deleted at the next open; an error here would only hide the caller's own. */
  private async removeSpool(): Promise<void> {
    dropped.unregister(this);
    await this.handle.close().catch(() => {});
    await rm(this.spool, { force: true }).catch(() => {});
  }
}

/**
 * A ranged GET's body, with an S3 failure in mid-stream (the object deleted, the store gone)
 * reported like every other: naming the object.
 */
function namedErrors(body: ReadableStream<Uint8Array>, what: string): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const { value, done } = await reader.read();
          if (done) controller.close();
          else controller.enqueue(value);
        } catch (error) {
          controller.error(s3Error(what, error));
        }
      },
      cancel: (reason) => reader.cancel(reason),
    },
    { highWaterMark: 0 },
  );
}
