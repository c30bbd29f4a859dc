/**
 * Where cached content lives, by digest: blobs and manifests alike. Today
 * FsStorage (fs-storage.ts) implements it, files under the cache directory;
 * in a fleet (issue 16) an S3-compatible object store does, beside it: a
 * multipart upload behind `TempBlob`, ranged GETs behind `StoredBlob.stream`
 * (and no `path`, so hits stream instead of going to the sendfile port).
 *
 * Content is addressed by digest and immutable: a blob becomes visible only
 * through `TempBlob.commit`, after its size and digest were verified, so a
 * reader can never see a partial or wrong blob under a digest.
 *
 * Types only: tests/cache/fs-storage.test.ts holds FsStorage to it.
 */
export interface StoredBlob {
  size: number;
  /** Local file holding the bytes, when the backend has one (lets the edge use the fastest file path). */
  path?: string;
  /** Bytes `start`..`end` inclusive. */
  stream(start: number, end: number): ReadableStream<Uint8Array>;
}

/**
 * A blob being filled. Readable while it is written, so coalesced clients can
 * follow the fill. Every `begin()` must end in `commit` or `abort`. Writes
 * started before `commit()` are part of the blob; reads keep working across
 * the commit (from the committed file) and fail after `abort`.
 */
export interface TempBlob {
  /**
   * The local file the bytes are written to, when there is one. A handle
   * opened on it while the fill lasts reads the same bytes after the commit
   * (the file is renamed into place, or removed once uploaded: Linux keeps
   * an open file's data), so followers can be sent it as a file (fill.ts).
   */
  readonly path?: string;
  /** Appends bytes; rejects when the disk is full or the write fails. */
  write(chunk: Uint8Array): Promise<void>;
  /** Reads already written bytes at `position` (fewer than `length` only at the current end). */
  read(position: number, length: number): Promise<Uint8Array>;
  /** Makes the bytes visible under `digest` (atomic rename). Only call after verification. */
  commit(digest: string): Promise<void>;
  /** Discards the temp data; safe to call more than once and after a failed write. */
  abort(): Promise<void>;
}

export interface BlobStorage {
  /**
   * True when other nodes write here too (a fleet's bucket): content this node's index does not
   * know may still be stored, so a miss asks the store (one HEAD) before going upstream. A local
   * directory only holds what this node committed, and its index was matched to it at start.
   */
  readonly shared?: boolean;
  /**
   * A committed blob, or undefined. Its `stream`/`path` fail once the blob is
   * deleted, so a reader counts as "in use" (see Evictor) before opening it.
   */
  open(digest: string): Promise<StoredBlob | undefined>;
  /**
   * A fill whose digest is known: a store that can (S3) streams the bytes to their final place as
   * they are written, and still shows nothing before `commit`. Without it they may be held locally.
   */
  begin(digest?: string): Promise<TempBlob>;
  delete(digest: string): Promise<void>;
  /** Every committed blob (digest and size), to rebuild the index after a crash or restart. */
  list(): AsyncIterable<{ digest: string; size: number }>;
}
