/**
 * The blob storage (blob-storage.ts) of a single node, on its filesystem:
 * committed blobs at `<dir>/blobs/<algorithm>/<encoded>`, fills in progress
 * at `<dir>/tmp/<random>`.
 *
 * Both live under one directory so that a commit is a `rename` within one
 * filesystem, which is atomic: a blob path either does not exist or holds the
 * complete, verified bytes. Anything still in `tmp/` when the process starts
 * was never committed (a crash, a kill -9) and is deleted.
 */
import { randomUUID } from "node:crypto";
import { mkdir, open, readdir, rename, rm, stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { isDigest } from "../oci/reference";
import type { BlobStorage, StoredBlob, TempBlob } from "./blob-storage";
import { SpoolFile } from "./spool-file";

export class FsStorage implements BlobStorage {
  private constructor(private readonly dir: string) {}

  /** Prepares `dir`; throws when it cannot be created or written, so the caller can run without a cache. */
  static async open(dir: string): Promise<FsStorage> {
    const storage = new FsStorage(resolve(dir));
    try {
      await mkdir(join(storage.dir, "blobs", "sha256"), { recursive: true });
      await mkdir(storage.tmpDir, { recursive: true });
      for (const leftover of await readdir(storage.tmpDir)) {
        await rm(join(storage.tmpDir, leftover), { recursive: true, force: true });
      }
      // An existing but read-only directory passes mkdir; a real temp file proves we can fill.
      const probe = join(storage.tmpDir, randomUUID());
      await (await open(probe, "wx")).close();
      await rm(probe);
    } catch (error) {
      throw new Error(`cache directory ${storage.dir} is not usable: ${(error as Error).message}`, { cause: error });
    }
    return storage;
  }

  async open(digest: string): Promise<StoredBlob | undefined> {
    const path = this.blobPath(digest);
    const info = await stat(path).catch(ifMissing(undefined));
    if (!info?.isFile()) return undefined;
    return {
      size: info.size,
      path,
      // A lazy slice: the file is read as the consumer pulls, never buffered whole.
      stream: (start, end) => Bun.file(path).slice(start, end + 1).stream(),
    };
  }

  async begin(): Promise<TempBlob> {
    const path = join(this.tmpDir, randomUUID());
    return new FsTempBlob(await SpoolFile.create(path), (digest) => this.blobPath(digest));
  }

  async delete(digest: string): Promise<void> {
    await rm(this.blobPath(digest), { force: true });
  }

  async *list(): AsyncIterable<{ digest: string; size: number }> {
    const root = join(this.dir, "blobs");
    for (const algorithm of await readdir(root, { withFileTypes: true })) {
      if (!algorithm.isDirectory()) continue;
      for (const entry of await readdir(join(root, algorithm.name), { withFileTypes: true })) {
        const digest = `${algorithm.name}:${entry.name}`;
        if (!entry.isFile() || !isDigest(digest)) continue; // not ours: never served, never counted
        const info = await stat(join(root, algorithm.name, entry.name)).catch(ifMissing(undefined));
        if (info) yield { digest, size: info.size }; // a missing one was deleted while we listed
      }
    }
  }

  private get tmpDir(): string {
    return join(this.dir, "tmp");
  }

  /** The grammar has no `/` and no `..`, so a validated digest cannot name a path outside `blobs/`. */
  private blobPath(digest: string): string {
    if (!isDigest(digest)) throw new Error(`invalid digest: ${JSON.stringify(digest)}`);
    const [algorithm, encoded] = digest.split(":", 2) as [string, string];
    return join(this.dir, "blobs", algorithm, encoded);
  }
}

/** One fill's spool file, renamed into place at commit (an atomic rename within one filesystem). */
class FsTempBlob implements TempBlob {
  /** Resolves to the committed path. */
  private committing: Promise<string> | undefined;
  private aborting: Promise<void> | undefined;

  constructor(
    private readonly spool: SpoolFile,
    private readonly blobPath: (digest: string) => string,
  ) {}

  get path(): string {
    return this.spool.path;
  }

  write(chunk: Uint8Array): Promise<void> {
    // Checked at the call, not when the queue reaches it: a write issued before commit() is part of the blob.
    if (this.committing || this.aborting) return Promise.reject(new Error("the temp blob is already committed or aborted"));
    return this.spool.append(chunk);
  }

  async read(position: number, length: number): Promise<Uint8Array> {
    const end = Math.min(position + length, this.spool.written);
    if (end <= position) return new Uint8Array(0);
    // A follower may still be behind when the fill commits: it goes on from the committed file.
    if (this.committing) return Bun.file(await this.committing).slice(position, end).bytes();
    if (this.aborting) throw new Error("the temp blob was aborted");
    return this.spool.read(position, length);
  }

  async commit(digest: string): Promise<void> {
    const target = this.blobPath(digest);
    if (this.committing || this.aborting) throw new Error("the temp blob is already committed or aborted");
    this.committing = this.moveTo(target);
    await this.committing;
  }

  abort(): Promise<void> {
    this.aborting ??= this.discard();
    return this.aborting;
  }

  private async moveTo(target: string): Promise<string> {
    await this.spool.settled();
    await this.spool.sync();
    await this.spool.close();
    await mkdir(dirname(target), { recursive: true });
    if (await stat(target).then(() => true, ifMissing(false))) {
      await rm(this.spool.path); // another fill committed the same digest first: same bytes, keep theirs
    } else {
      await rename(this.spool.path, target);
    }
    return target;
  }

  private async discard(): Promise<void> {
    if (this.committing && (await this.committing.then(() => true, () => false))) return; // nothing left to discard
    await this.spool.remove();
  }
}

/** A catch handler that maps ENOENT to `value` and rethrows anything else. */
function ifMissing<T>(value: T): (error: unknown) => T {
  return (error) => {
    if ((error as { code?: unknown }).code === "ENOENT") return value;
    throw error;
  };
}
