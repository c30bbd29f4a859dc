/**
 * One fill into the fleet's bucket (s3-storage.ts begins it): the spool a
 * fill's readers follow, and the multipart upload it feeds. Tested through
 * S3Storage in tests/cache/s3-storage.test.ts.
 */
import type { TempBlob } from "./blob-storage";
import { s3Error, type MultipartUpload } from "./s3-upload";
import type { SpoolFile } from "./spool-file";

/** What a temp blob needs of its bucket. */
export interface Bucket {
  upload(key: string): Promise<number>;
  key(digest: string): string;
  where(key: string): string;
  read(key: string, start: number, end: number): Promise<Uint8Array>;
}

/**
 * One fill: every chunk goes to the spool, then to the upload (spool-file.ts queues them). A temp
 * blob dropped without commit or abort (a caller's bug) would leave its upload open for ever: the
 * spool cancels it when collected.
 *
 * Only a spool that cannot be written fails a write. An upload that fails (the bucket down or
 * hanging mid-fill) costs the bucket this blob, not the fill: the spool still holds every byte,
 * so the fill's readers, other nodes following it included, go on from it, and `commit` reports
 * the upload's failure. Failing the write instead made the fill refuse new readers (a disk
 * failure, cache/fill.ts), which cut the clients of nodes that were about to follow it.
 */
export class S3TempBlob implements TempBlob {
  /** Why the upload failed; later chunks go to the spool only. */
  private uploadError: unknown;
  private committing: Promise<void> | undefined;
  /** The key, once the object is complete; the spool goes away then. */
  private committed: string | undefined;
  private aborting: Promise<void> | undefined;

  constructor(
    private readonly spool: SpoolFile,
    private readonly digest: string | undefined,
    private readonly upload: MultipartUpload | undefined,
    private readonly bucket: Bucket,
  ) {}

  get path(): string {
    return this.spool.path;
  }

  write(chunk: Uint8Array): Promise<void> {
    // Checked at the call, not when the queue reaches it: a write issued before commit() is part of the blob.
    if (this.committing || this.aborting) return Promise.reject(new Error("the temp blob is already committed or aborted"));
    return this.spool.append(chunk, this.upload && ((chunk) => this.push(chunk)));
  }

  /** Hands a chunk on to the upload; a failed upload is cancelled (no object may appear from what was sent). */
  private async push(chunk: Uint8Array): Promise<void> {
    if (this.uploadError !== undefined) return;
    await this.upload!.push(chunk).catch((error: unknown) => {
      this.uploadError = error;
      void this.upload!.cancel();
    });
  }

  async read(position: number, length: number): Promise<Uint8Array> {
    const end = Math.min(position + length, this.spool.written);
    if (end <= position) return new Uint8Array(0);
    // A follower still behind when the fill commits goes on from the committed object.
    if (this.committed !== undefined) return this.bucket.read(this.committed, position, end);
    if (this.aborting) throw new Error("the temp blob was aborted");
    return this.spool.read(position, length);
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

  private async complete(key: string): Promise<void> {
    await this.spool.settled();
    if (this.uploadError !== undefined) throw this.uploadError;
    if (this.upload) await this.upload.finish();
    else {
      await this.bucket.upload(key).catch((error) => {
        throw s3Error(`upload of ${this.bucket.where(key)}`, error);
      });
    }
    this.committed = key;
    await this.spool.remove();
  }

  private async discard(): Promise<void> {
    if (this.committing && (await this.committing.then(() => true, () => false))) return; // nothing left to discard
    await this.upload?.cancel(); // first: a write waiting for the upload to want more is released
    await this.spool.remove();
  }
}
