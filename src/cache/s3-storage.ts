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
import { mkdir, readdir, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { S3Client } from "bun";
import { isDigest } from "../oci/reference";
import { presignGet } from "./s3-presign";
import { MultipartUpload, s3Error, STALL_TIMEOUT_MS, UPLOAD_OPTIONS, within } from "./s3-upload";
import type { BlobStorage, StoredBlob, TempBlob } from "./blob-storage";
import { SpoolFile } from "./spool-file";
import { S3TempBlob } from "./s3-temp-blob";

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
    /** What `presign` signs with: the same endpoint and keys as the client. */
    private readonly signing: Pick<S3StorageOptions, "endpoint" | "region" | "accessKeyId" | "secretAccessKey">,
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
    const signing = { endpoint, region, accessKeyId, secretAccessKey };
    return new S3Storage(client, bucket, new URL(endpoint).origin, options.prefix ?? "", resolve(options.spoolDir), timeoutMs, signing);
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
    let upload: MultipartUpload | undefined; // opened once the spool is: a failed open leaves no upload behind
    const file = await SpoolFile.create(spool, () => void upload?.cancel());
    if (key !== undefined) upload = new MultipartUpload(this.client, key, this.where(key), this.timeoutMs.stall);
    return new S3TempBlob(file, digest, upload, {
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

  /**
   * A URL of the blob's object (path-style, as the client addresses the bucket) that lets whoever
   * holds it GET the object for `expiresInSeconds`, with no request to the store now.
   */
  presign(digest: string, expiresInSeconds: number): string {
    return presignGet({ ...this.signing, path: `/${this.bucket}/${this.key(digest)}`, expiresInSeconds });
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
