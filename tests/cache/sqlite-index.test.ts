/**
 * The SQLite cache index on a real database file: what survives a restart,
 * the tag mapping per accept class, LRU order and the rebuild from storage.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteIndex } from "../../src/cache/sqlite-index";

const root = mkdtempSync(join(tmpdir(), "docxy-cache-index-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let files = 0;
const freshPath = () => join(root, `index-${++files}.sqlite`);
const digest = (c: string) => `sha256:${c.repeat(64)}`;

/** A clock the test moves by hand. */
function manualClock(start = 1_000_000) {
  let time = start;
  return { now: () => time, advance: (ms: number) => void (time += ms) };
}

test("blobs, tags and repository access survive close and reopen", () => {
  const path = freshPath();
  const clock = manualClock();
  const index = SqliteIndex.open(path, clock);
  index.putBlob(digest("a"), 100);
  index.putBlob(digest("b"), 200, "application/vnd.oci.image.manifest.v1+json");
  index.putTag("registry-1.docker.io", "library/alpine", "3.20", "oci", { digest: digest("b"), mediaType: "application/vnd.oci.image.index.v1+json", size: 200 });
  index.putRepositoryAccess("registry-1.docker.io", "library/alpine", true);
  index.putRepositoryAccess("ghcr.io", "acme/private", false);
  expect(existsSync(`${path}-wal`)).toBe(true);
  index.close();
  expect(existsSync(`${path}-wal`)).toBe(false); // close really closed: the log went into the database

  const reopened = SqliteIndex.open(path);
  expect(reopened.getBlob(digest("a"))).toEqual({ digest: digest("a"), size: 100, lastAccess: 1_000_000 });
  expect(reopened.getBlob(digest("b"))).toEqual({
    digest: digest("b"),
    size: 200,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    lastAccess: 1_000_000,
  });
  expect(reopened.totalBytes()).toBe(300);
  expect(reopened.getTag("registry-1.docker.io", "library/alpine", "3.20", "oci")).toEqual({
    digest: digest("b"),
    mediaType: "application/vnd.oci.image.index.v1+json",
    size: 200,
    fetchedAt: 1_000_000,
  });
  expect(reopened.getRepositoryAccess("registry-1.docker.io", "library/alpine")).toEqual({ public: true, checkedAt: 1_000_000 });
  expect(reopened.getRepositoryAccess("ghcr.io", "acme/private")).toEqual({ public: false, checkedAt: 1_000_000 });
  expect(reopened.getRepositoryAccess("ghcr.io", "acme/other")).toBeUndefined();
  reopened.close();
});

test("a tag maps separately per accept class, upstream and repository; a later put replaces", () => {
  const clock = manualClock();
  const index = SqliteIndex.open(freshPath(), clock);
  const indexTarget = { digest: digest("1"), mediaType: "application/vnd.oci.image.index.v1+json", size: 500 };
  const schema2Target = { digest: digest("2"), mediaType: "application/vnd.docker.distribution.manifest.v2+json", size: 400 };
  index.putTag("docker.io", "library/nginx", "latest", "index", indexTarget);
  index.putTag("docker.io", "library/nginx", "latest", "schema2", schema2Target);

  expect(index.getTag("docker.io", "library/nginx", "latest", "index")).toEqual({ ...indexTarget, fetchedAt: 1_000_000 });
  expect(index.getTag("docker.io", "library/nginx", "latest", "schema2")).toEqual({ ...schema2Target, fetchedAt: 1_000_000 });
  expect(index.getTag("docker.io", "library/nginx", "latest", "other")).toBeUndefined();
  expect(index.getTag("docker.io", "library/nginx", "1.27", "index")).toBeUndefined();
  expect(index.getTag("docker.io", "library/redis", "latest", "index")).toBeUndefined();
  expect(index.getTag("ghcr.io", "library/nginx", "latest", "index")).toBeUndefined();

  clock.advance(5000);
  const retagged = { digest: digest("3"), mediaType: indexTarget.mediaType, size: 510 };
  index.putTag("docker.io", "library/nginx", "latest", "index", retagged);
  expect(index.getTag("docker.io", "library/nginx", "latest", "index")).toEqual({ ...retagged, fetchedAt: 1_005_000 });
  expect(index.getTag("docker.io", "library/nginx", "latest", "schema2")).toEqual({ ...schema2Target, fetchedAt: 1_000_000 });

  index.putRepositoryAccess("docker.io", "library/nginx", false);
  clock.advance(1000);
  index.putRepositoryAccess("docker.io", "library/nginx", true);
  expect(index.getRepositoryAccess("docker.io", "library/nginx")).toEqual({ public: true, checkedAt: 1_006_000 });
  index.close();
});

test("oldest() follows the last access: puts and touches move an entry to the back", () => {
  const clock = manualClock();
  const index = SqliteIndex.open(freshPath(), clock);
  for (const c of ["a", "b", "c", "d"]) {
    index.putBlob(digest(c), 10);
    clock.advance(1000);
  }
  index.touch(digest("a"));
  clock.advance(1000);
  index.putBlob(digest("c"), 30);
  index.touch(digest("missing")); // nothing to touch, no row appears

  expect(index.oldest(10)).toEqual([
    { digest: digest("b"), size: 10, lastAccess: 1_001_000 },
    { digest: digest("d"), size: 10, lastAccess: 1_003_000 },
    { digest: digest("a"), size: 10, lastAccess: 1_004_000 },
    { digest: digest("c"), size: 30, lastAccess: 1_005_000 },
  ]);
  expect(index.oldest(2).map((entry) => entry.digest)).toEqual([digest("b"), digest("d")]);
  expect(index.totalBytes()).toBe(60);

  index.removeBlob(digest("d"));
  expect(index.getBlob(digest("d"))).toBeUndefined();
  expect(index.totalBytes()).toBe(50);
  index.close();
});

test("a manifest keeps its media type when the same digest is stored again as a plain blob", () => {
  const index = SqliteIndex.open(freshPath());
  index.putBlob(digest("m"), 42, "application/vnd.oci.image.manifest.v1+json");
  index.putBlob(digest("m"), 42);
  expect(index.getBlob(digest("m"))?.mediaType).toBe("application/vnd.oci.image.manifest.v1+json");
  index.close();
});

test("syncBlobs drops rows without a file, adopts files without a row, and keeps the rest's last access", () => {
  const clock = manualClock();
  const index = SqliteIndex.open(freshPath(), clock);
  index.putBlob(digest("a"), 10); // present
  index.putBlob(digest("b"), 20); // gone from storage
  index.putBlob(digest("c"), 30, "application/vnd.oci.image.index.v1+json"); // present, size on disk differs
  clock.advance(60_000);

  index.syncBlobs([
    { digest: digest("a"), size: 10 },
    { digest: digest("c"), size: 33 },
    { digest: digest("d"), size: 40 }, // committed just before a crash, never indexed
  ]);

  expect(index.oldest(10)).toEqual([
    { digest: digest("a"), size: 10, lastAccess: 1_000_000 },
    { digest: digest("c"), size: 33, lastAccess: 1_000_000 },
    { digest: digest("d"), size: 40, lastAccess: 1_060_000 },
  ]);
  expect(index.getBlob(digest("c"))?.mediaType).toBe("application/vnd.oci.image.index.v1+json");
  expect(index.totalBytes()).toBe(83);

  index.syncBlobs([]);
  expect(index.totalBytes()).toBe(0);
  index.close();
});

test("an empty index has no bytes and no oldest entries", () => {
  const index = SqliteIndex.open(freshPath());
  expect(index.totalBytes()).toBe(0);
  expect(index.oldest(5)).toEqual([]);
  expect(index.getBlob(digest("a"))).toBeUndefined();
  index.close();
});

test("a file that is not a SQLite database is refused with a clear error", () => {
  const path = freshPath();
  writeFileSync(path, "definitely not a database ".repeat(200));
  expect(() => SqliteIndex.open(path)).toThrow(`cache index ${path} is not usable: file is not a database`);
});

test("a database with a damaged page is refused at open, not in the middle of a pull", () => {
  const path = freshPath();
  const index = SqliteIndex.open(path);
  for (let i = 0; i < 500; i++) index.putBlob(`sha256:${i.toString(16).padStart(64, "0")}`, i);
  index.close();
  const bytes = new Uint8Array(readFileSync(path));
  bytes.fill(0xff, 4096 + 100, 4096 * 3); // inside the pages after the header page
  writeFileSync(path, bytes);
  expect(() => SqliteIndex.open(path)).toThrow(`cache index ${path} is not usable`);
});

test("a directory that does not exist is refused with a clear error", () => {
  const path = join(root, "missing", "index.sqlite");
  expect(() => SqliteIndex.open(path)).toThrow(`cache index ${path} is not usable`);
});
