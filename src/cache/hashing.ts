/**
 * SHA-256 of a blob as it streams in: what a fill (fill.ts) verifies before
 * it commits. Two implementations: IN_THREAD hashes on the caller's thread,
 * OffThreadHashing (hashing-thread.ts) on a worker thread of its own. SHA-256
 * runs at ~400-800 MB/s per core here, a large share of the one thread every
 * byte of a cold blob crosses; open-cache.ts (hashingFor) moves it to the
 * worker where a core is left for it.
 */
export interface Sha256Stream {
  /** Adds bytes, in order. A promise when hashing is so far behind that the caller must wait (bounds memory). */
  update(chunk: Uint8Array): Promise<void> | undefined;
  /** The hex digest of everything added; the stream is finished. */
  digest(): Promise<string>;
  /** Lets go of a stream that will not be finished (a failed fill). */
  drop(): void;
}

export interface Hashing {
  start(): Sha256Stream;
}

/** Hashing on the calling thread. */
export const IN_THREAD: Hashing = {
  start(): Sha256Stream {
    const hasher = new Bun.CryptoHasher("sha256");
    return {
      update: (chunk) => void hasher.update(chunk),
      digest: async () => hasher.digest("hex"),
      drop: () => undefined,
    };
  },
};
