/**
 * The cache's metadata: which blobs are stored and when each was last used
 * (LRU accounting for eviction), which digest a tag pointed to, which
 * repository each digest was fetched for (links: the access gate's first
 * check), and which repositories an anonymous pull may read.
 *
 * Today SqliteIndex (sqlite-index.ts) implements it, next to the blobs. The
 * methods are synchronous because today's callers rely on it: the blob
 * cache decides hit or miss without yielding, and the admin API, the status
 * page and the metrics read totals inline. A Redis index (issue 16) answers
 * over the network, so the fleet turns these into Promises and converts
 * those callers (cache/, http/routes/admin.ts and status-page.ts, the
 * metrics in services.ts) in the same change; nothing else has to know.
 * Everything here can be rebuilt (sizes from the store, tags and access
 * from the upstream), which is what lets a node drop a broken one.
 *
 * Types only: tests/cache/sqlite-index.test.ts holds SqliteIndex to it.
 */

export interface IndexedBlob {
  digest: string;
  size: number;
  /** Set for manifests, which are stored as blobs under their digest. */
  mediaType?: string;
  /** Milliseconds since the epoch. */
  lastAccess: number;
}

export interface TagTarget {
  digest: string;
  mediaType: string;
  size: number;
}

export interface RepositoryAccess {
  public: boolean;
  checkedAt: number;
}

export interface CachedTag {
  upstream: string;
  repository: string;
  tag: string;
  digest: string;
  mediaType: string;
  fetchedAt: number;
}

/** One cached repository as the status page's cache browser lists it (cache-browser.ts). */
export interface CachedRepository {
  upstream: string;
  repository: string;
  /** Distinct cached tags. */
  tags: number;
  /** Bytes of the cached content linked to the repository (shared content counts in each repository). */
  bytes: number;
  /** Latest use of any of that content, milliseconds since the epoch; 0 when none is stored. */
  lastAccess: number;
}

export interface RepositoryPage {
  /** Resume after this (upstream, repository), in that order; from the start when absent. */
  after?: { upstream: string; repository: string };
  limit: number;
  /** Only repositories whose name contains this text. */
  contains?: string;
  /** Only repositories known to be readable anonymously (see putRepositoryAccess). */
  publicOnly?: boolean;
}

export interface CacheIndex {
  putBlob(digest: string, size: number, mediaType?: string): void;
  getBlob(digest: string): IndexedBlob | undefined;
  /** Marks the blob used now (it moves to the back of the eviction order). */
  touch(digest: string): void;
  removeBlob(digest: string): void;
  totalBytes(): number;
  /** How many blobs and manifests are cached. */
  entries(): number;
  /** Least recently used first, pinned content left out (eviction never takes it). */
  oldest(limit: number): Omit<IndexedBlob, "mediaType">[];
  /**
   * Makes the blob entries match what storage holds (after a crash, a
   * restart, or files deleted by hand): entries without content go, content
   * without an entry is adopted as used now.
   */
  syncBlobs(present: { digest: string; size: number }[]): void;

  /** `acceptKey` names the client's class of Accept header: the same tag can resolve to different manifests. */
  getTag(upstream: string, repository: string, tag: string, acceptKey: string): (TagTarget & { fetchedAt: number }) | undefined;
  /** `fetchedAt` (default now): an answer another node of a fleet fetched keeps its age (shared-knowledge.ts). */
  putTag(upstream: string, repository: string, tag: string, acceptKey: string, target: TagTarget, fetchedAt?: number): void;
  /** Every cached tag, newest first, at most `limit`. */
  tags(limit: number): CachedTag[];

  /** Repositories with a cached tag or cached content, by upstream then name, one page at a time. */
  repositories(page: RepositoryPage): CachedRepository[];
  /** A repository's cached tags by name, each as last fetched (any accept class). */
  repositoryTags(upstream: string, repository: string): CachedTag[];

  /** Records that `digest` exists in `repository` upstream (it was fetched, or checked, there). */
  putLink(upstream: string, repository: string, digest: string): void;
  hasLink(upstream: string, repository: string, digest: string): boolean;
  /** Forgets a repository's tags and links; returns the digests no other repository links to any more. */
  removeRepository(upstream: string, repository: string): string[];

  getRepositoryAccess(upstream: string, repository: string): RepositoryAccess | undefined;
  /** `checkedAt` (default now): as for putTag's `fetchedAt`. */
  putRepositoryAccess(upstream: string, repository: string, isPublic: boolean, checkedAt?: number): void;

  /**
   * Records `digests` as held by the pin entry `pin` ([cache] pin, cache/pins.ts); `replace`
   * first forgets what the entry held before (a tag that moved releases its old content).
   */
  pin(pin: string, digests: string[], replace: boolean): void;
  /** Forgets every pin entry not named (entries removed from the configuration). */
  retainPins(pins: string[]): void;
  isPinned(digest: string): boolean;
  /** Stored bytes and entries some pin holds. */
  pinned(): { bytes: number; entries: number };

  close(): void;
}
