/**
 * The cache index (cache-index.ts) of a single node, in SQLite next to the
 * blobs, surviving restarts: what is stored and when it was last used (for
 * eviction), which digest a tag pointed to, links, and which repositories
 * an anonymous pull may read.
 *
 * bun:sqlite is synchronous and a prepared statement runs in microseconds,
 * so every method is synchronous too (research/bun-elysia.md §9).
 */
import { Database } from "bun:sqlite";
import type { CachedRepository, CachedTag, CacheIndex, IndexedBlob, RepositoryAccess, RepositoryPage, TagTarget } from "./cache-index";

export interface SqliteIndexOptions {
  /** Milliseconds since the epoch; injectable so tests can order accesses. */
  now?: () => number;
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS blobs (
    digest TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    media_type TEXT,
    last_access INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX IF NOT EXISTS blobs_by_last_access ON blobs (last_access, digest);
  CREATE TABLE IF NOT EXISTS tags (
    upstream TEXT NOT NULL,
    repository TEXT NOT NULL,
    tag TEXT NOT NULL,
    accept_key TEXT NOT NULL,
    digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    fetched_at INTEGER NOT NULL,
    PRIMARY KEY (upstream, repository, tag, accept_key)
  ) STRICT, WITHOUT ROWID;
  -- Which repository each cached digest was fetched for: content is keyed by digest alone, but
  -- a client may only get it under a repository the upstream really has it in.
  CREATE TABLE IF NOT EXISTS links (
    upstream TEXT NOT NULL,
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (upstream, repository, digest)
  ) STRICT, WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS repositories (
    upstream TEXT NOT NULL,
    repository TEXT NOT NULL,
    public INTEGER NOT NULL,
    checked_at INTEGER NOT NULL,
    PRIMARY KEY (upstream, repository)
  ) STRICT, WITHOUT ROWID;
  -- Content of pinned images ([cache] pin), by the pin entry that holds it: eviction passes it by.
  CREATE TABLE IF NOT EXISTS pins (
    pin TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (pin, digest)
  ) STRICT, WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS pins_by_digest ON pins (digest);
`;

type BlobRow = { digest: string; size: number; mediaType: string | null; lastAccess: number };
type TagKey = { upstream: string; repository: string; tag: string; acceptKey: string };

export class SqliteIndex implements CacheIndex {
  private readonly statements: ReturnType<typeof prepareStatements>;

  private constructor(
    private readonly db: Database,
    private readonly now: () => number,
  ) {
    this.statements = prepareStatements(db);
  }

  /** Opens or creates the index; throws when the file is not a sound SQLite database. */
  static open(path: string, options: SqliteIndexOptions = {}): SqliteIndex {
    let db: Database | undefined;
    try {
      db = new Database(path, { create: true, strict: true });
      db.exec("PRAGMA journal_mode = WAL");
      // Every cache hit writes a last access; NORMAL skips the fsync per commit. In WAL mode it
      // cannot corrupt the database, a power loss only forgets the latest accesses.
      db.exec("PRAGMA synchronous = NORMAL");
      // Corruption found here lets the caller fall back to no cache, instead of failing pulls later.
      const problems = db.query<{ quick_check: string }, []>("PRAGMA quick_check").all().map((row) => row.quick_check);
      if (problems.join() !== "ok") throw new Error(problems.join("; "));
      db.exec(SCHEMA);
      return new SqliteIndex(db, options.now ?? Date.now);
    } catch (error) {
      db?.close();
      throw new Error(`cache index ${path} is not usable: ${(error as Error).message}`, { cause: error });
    }
  }

  putBlob(digest: string, size: number, mediaType?: string): void {
    this.statements.putBlob.run({ digest, size, mediaType: mediaType ?? null, now: this.now() });
  }

  getBlob(digest: string): IndexedBlob | undefined {
    const row = this.statements.getBlob.get({ digest });
    if (row === null) return undefined;
    return { digest: row.digest, size: row.size, mediaType: row.mediaType ?? undefined, lastAccess: row.lastAccess };
  }

  touch(digest: string): void {
    this.statements.touch.run({ digest, now: this.now() });
  }

  removeBlob(digest: string): void {
    this.statements.removeBlob.run({ digest });
  }

  totalBytes(): number {
    return this.statements.totalBytes.get()?.total ?? 0;
  }

  /** Least recently used first; pinned content is left out, so eviction never sees it. */
  oldest(limit: number): Omit<IndexedBlob, "mediaType">[] {
    return this.statements.oldest.all({ limit });
  }

  /**
   * Makes the blob rows match what storage holds (after a crash, a restart, or
   * files deleted by hand): rows without a file go, files without a row are
   * adopted as used now, so they are not the first evicted.
   */
  syncBlobs(present: { digest: string; size: number }[]): void {
    const now = this.now();
    this.db.transaction(() => {
      const onDisk = new Set(present.map((blob) => blob.digest));
      for (const { digest } of this.statements.allDigests.all()) {
        if (!onDisk.has(digest)) this.statements.removeBlob.run({ digest });
      }
      for (const { digest, size } of present) this.statements.adoptBlob.run({ digest, size, now });
    })();
  }

  /** `acceptKey` names the client's class of Accept header: the same tag can resolve to different manifests. */
  getTag(upstream: string, repository: string, tag: string, acceptKey: string): (TagTarget & { fetchedAt: number }) | undefined {
    return this.statements.getTag.get({ upstream, repository, tag, acceptKey }) ?? undefined;
  }

  putTag(upstream: string, repository: string, tag: string, acceptKey: string, target: TagTarget, fetchedAt?: number): void {
    const { digest, mediaType, size } = target;
    this.statements.putTag.run({ upstream, repository, tag, acceptKey, digest, mediaType, size, now: fetchedAt ?? this.now() });
  }

  getRepositoryAccess(upstream: string, repository: string): RepositoryAccess | undefined {
    const row = this.statements.getAccess.get({ upstream, repository });
    return row === null ? undefined : { public: row.public === 1, checkedAt: row.checkedAt };
  }

  putRepositoryAccess(upstream: string, repository: string, isPublic: boolean, checkedAt?: number): void {
    this.statements.putAccess.run({ upstream, repository, public: isPublic ? 1 : 0, now: checkedAt ?? this.now() });
  }

  /** Every cached tag, newest first, at most `limit`. */
  tags(limit: number): CachedTag[] {
    return this.statements.listTags.all({ limit });
  }

  repositories(page: RepositoryPage): CachedRepository[] {
    return this.statements.repositories.all({
      afterUpstream: page.after?.upstream ?? "",
      afterRepository: page.after?.repository ?? "",
      // LIKE's own wildcards in the text are taken literally.
      contains: `%${(page.contains ?? "").replace(/[\\%_]/g, (c) => `\\${c}`)}%`,
      publicOnly: page.publicOnly ? 1 : 0,
      limit: page.limit,
    });
  }

  repositoryTags(upstream: string, repository: string): CachedTag[] {
    return this.statements.repositoryTags.all({ upstream, repository });
  }

  /**
   * Forgets a repository: its tags and links. Returns the digests no other
   * repository links to any more (the caller deletes their content).
   */
  removeRepository(upstream: string, repository: string): string[] {
    return this.db.transaction(() => {
      const digests = this.statements.linkedDigests.all({ upstream, repository }).map((r) => r.digest);
      this.statements.removeTags.run({ upstream, repository });
      this.statements.removeLinks.run({ upstream, repository });
      return digests.filter((digest) => this.statements.anyLink.get({ digest }) === null);
    })();
  }

  /** How many blobs and manifests are cached. */
  entries(): number {
    return this.statements.count.get()?.count ?? 0;
  }

  /** Records that `digest` exists in `repository` upstream (it was fetched, or checked, there). */
  putLink(upstream: string, repository: string, digest: string): void {
    this.statements.putLink.run({ upstream, repository, digest });
  }

  hasLink(upstream: string, repository: string, digest: string): boolean {
    return this.statements.getLink.get({ upstream, repository, digest }) !== null;
  }

  pin(pin: string, digests: string[], replace: boolean): void {
    this.db.transaction(() => {
      if (replace) this.statements.unpin.run({ pin });
      for (const digest of digests) this.statements.pin.run({ pin, digest });
    })();
  }

  retainPins(pins: string[]): void {
    const keep = new Set(pins);
    this.db.transaction(() => {
      for (const { pin } of this.statements.pinNames.all()) if (!keep.has(pin)) this.statements.unpin.run({ pin });
    })();
  }

  isPinned(digest: string): boolean {
    return this.statements.isPinned.get({ digest }) !== null;
  }

  pinned(): { bytes: number; entries: number } {
    return this.statements.pinned.get() ?? { bytes: 0, entries: 0 };
  }

  close(): void {
    // A statement left open keeps the connection alive past close(), and with it the WAL file
    // that the last close would have checkpointed into the database.
    for (const statement of Object.values(this.statements)) statement.finalize();
    this.db.close();
  }
}

function prepareStatements(db: Database) {
  return {
    putBlob: db.prepare<void, { digest: string; size: number; mediaType: string | null; now: number }>(
      // The same bytes can be fetched as a blob and as a manifest: keep the media type once known.
      `INSERT INTO blobs (digest, size, media_type, last_access) VALUES ($digest, $size, $mediaType, $now)
       ON CONFLICT (digest) DO UPDATE SET size = excluded.size,
         media_type = COALESCE(excluded.media_type, media_type), last_access = excluded.last_access`,
    ),
    adoptBlob: db.prepare<void, { digest: string; size: number; now: number }>(
      // The file is the truth for the size; a known entry keeps its last access.
      `INSERT INTO blobs (digest, size, last_access) VALUES ($digest, $size, $now)
       ON CONFLICT (digest) DO UPDATE SET size = excluded.size`,
    ),
    getBlob: db.prepare<BlobRow, { digest: string }>(
      "SELECT digest, size, media_type AS mediaType, last_access AS lastAccess FROM blobs WHERE digest = $digest",
    ),
    touch: db.prepare<void, { digest: string; now: number }>("UPDATE blobs SET last_access = $now WHERE digest = $digest"),
    removeBlob: db.prepare<void, { digest: string }>("DELETE FROM blobs WHERE digest = $digest"),
    totalBytes: db.prepare<{ total: number }, []>("SELECT COALESCE(SUM(size), 0) AS total FROM blobs"),
    oldest: db.prepare<Omit<BlobRow, "mediaType">, { limit: number }>(
      `SELECT digest, size, last_access AS lastAccess FROM blobs WHERE digest NOT IN (SELECT digest FROM pins)
       ORDER BY last_access, digest LIMIT $limit`,
    ),
    allDigests: db.prepare<{ digest: string }, []>("SELECT digest FROM blobs"),
    getTag: db.prepare<TagTarget & { fetchedAt: number }, TagKey>(
      `SELECT digest, media_type AS mediaType, size, fetched_at AS fetchedAt FROM tags
       WHERE upstream = $upstream AND repository = $repository AND tag = $tag AND accept_key = $acceptKey`,
    ),
    putTag: db.prepare<void, TagKey & { digest: string; mediaType: string; size: number; now: number }>(
      `INSERT OR REPLACE INTO tags (upstream, repository, tag, accept_key, digest, media_type, size, fetched_at)
       VALUES ($upstream, $repository, $tag, $acceptKey, $digest, $mediaType, $size, $now)`,
    ),
    count: db.prepare<{ count: number }, []>("SELECT COUNT(*) AS count FROM blobs"),
    listTags: db.prepare<CachedTag, { limit: number }>(
      `SELECT upstream, repository, tag, digest, media_type AS mediaType, MAX(fetched_at) AS fetchedAt FROM tags
       GROUP BY upstream, repository, tag ORDER BY fetchedAt DESC LIMIT $limit`,
    ),
    // Keyset pagination (never OFFSET): a page of a cache with thousands of repositories costs the same as the first.
    repositories: db.prepare<
      CachedRepository,
      { afterUpstream: string; afterRepository: string; contains: string; publicOnly: number; limit: number }
    >(
      `WITH names AS (SELECT upstream, repository FROM tags UNION SELECT upstream, repository FROM links)
       SELECT n.upstream, n.repository,
         (SELECT COUNT(DISTINCT tag) FROM tags t WHERE t.upstream = n.upstream AND t.repository = n.repository) AS tags,
         COALESCE((SELECT SUM(b.size) FROM links l JOIN blobs b ON b.digest = l.digest
           WHERE l.upstream = n.upstream AND l.repository = n.repository), 0) AS bytes,
         COALESCE((SELECT MAX(b.last_access) FROM links l JOIN blobs b ON b.digest = l.digest
           WHERE l.upstream = n.upstream AND l.repository = n.repository), 0) AS lastAccess
       FROM names n
       WHERE (n.upstream, n.repository) > ($afterUpstream, $afterRepository)
         AND n.repository LIKE $contains ESCAPE '\\'
         AND ($publicOnly = 0 OR EXISTS (SELECT 1 FROM repositories r
           WHERE r.upstream = n.upstream AND r.repository = n.repository AND r.public = 1))
       ORDER BY n.upstream, n.repository LIMIT $limit`,
    ),
    repositoryTags: db.prepare<CachedTag, { upstream: string; repository: string }>(
      `SELECT upstream, repository, tag, digest, media_type AS mediaType, MAX(fetched_at) AS fetchedAt FROM tags
       WHERE upstream = $upstream AND repository = $repository GROUP BY tag ORDER BY tag`,
    ),
    linkedDigests: db.prepare<{ digest: string }, { upstream: string; repository: string }>(
      "SELECT digest FROM links WHERE upstream = $upstream AND repository = $repository",
    ),
    removeTags: db.prepare<void, { upstream: string; repository: string }>("DELETE FROM tags WHERE upstream = $upstream AND repository = $repository"),
    removeLinks: db.prepare<void, { upstream: string; repository: string }>("DELETE FROM links WHERE upstream = $upstream AND repository = $repository"),
    anyLink: db.prepare<{ one: number }, { digest: string }>("SELECT 1 AS one FROM links WHERE digest = $digest LIMIT 1"),
    putLink: db.prepare<void, { upstream: string; repository: string; digest: string }>(
      "INSERT OR IGNORE INTO links (upstream, repository, digest) VALUES ($upstream, $repository, $digest)",
    ),
    getLink: db.prepare<{ one: number }, { upstream: string; repository: string; digest: string }>(
      "SELECT 1 AS one FROM links WHERE upstream = $upstream AND repository = $repository AND digest = $digest",
    ),
    pin: db.prepare<void, { pin: string; digest: string }>("INSERT OR IGNORE INTO pins (pin, digest) VALUES ($pin, $digest)"),
    unpin: db.prepare<void, { pin: string }>("DELETE FROM pins WHERE pin = $pin"),
    pinNames: db.prepare<{ pin: string }, []>("SELECT DISTINCT pin FROM pins"),
    isPinned: db.prepare<{ one: number }, { digest: string }>("SELECT 1 AS one FROM pins WHERE digest = $digest LIMIT 1"),
    // Stored content only: a pin recorded for a blob that is gone (deleted by hand) counts nothing.
    pinned: db.prepare<{ bytes: number; entries: number }, []>(
      "SELECT COALESCE(SUM(size), 0) AS bytes, COUNT(*) AS entries FROM blobs WHERE digest IN (SELECT digest FROM pins)",
    ),
    getAccess: db.prepare<{ public: number; checkedAt: number }, { upstream: string; repository: string }>(
      "SELECT public, checked_at AS checkedAt FROM repositories WHERE upstream = $upstream AND repository = $repository",
    ),
    putAccess: db.prepare<void, { upstream: string; repository: string; public: number; now: number }>(
      `INSERT OR REPLACE INTO repositories (upstream, repository, public, checked_at)
       VALUES ($upstream, $repository, $public, $now)`,
    ),
  };
}
