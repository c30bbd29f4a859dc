/**
 * The watched store (cache/watched-storage.ts) around the real filesystem
 * store: a temp directory that is no directory any more turns it "failing" with the store's own
 * message and counts each failure; the next operation that works turns it
 * "up" again. Outcomes reach the caller unchanged. With a real bucket going
 * down: tests/cache/s3-blob-cache.test.ts.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FsStorage } from "../../src/cache/fs-storage";
import { WatchedStorage } from "../../src/cache/watched-storage";
import { sha256 } from "../support/layers";

const root = mkdtempSync(join(tmpdir(), "docxy-watched-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

test("failures turn the store failing with their reason and are counted; the next success turns it up", async () => {
  const dir = join(root, "cache");
  const storage = new WatchedStorage(await FsStorage.open(dir), "filesystem");
  expect(storage.status).toEqual({ storage: "filesystem", state: "up", failures: 0 });
  expect(storage.shared).toBe(false);

  const bytes = new TextEncoder().encode("watched");
  const temp = await storage.begin(sha256(bytes));
  await temp.write(bytes);
  await temp.commit(sha256(bytes));
  expect((await storage.open(sha256(bytes)))?.size).toBe(bytes.length);
  expect(await storage.open(sha256(new Uint8Array(1)))).toBeUndefined(); // a miss is no failure
  expect(storage.status.state).toBe("up");

  // Where temp files go is no directory any more (refused even to root, unlike a chmod).
  rmSync(join(dir, "tmp"), { recursive: true });
  writeFileSync(join(dir, "tmp"), "");
  await expect(storage.begin()).rejects.toThrow("ENOTDIR");
  await expect(storage.begin()).rejects.toThrow("ENOTDIR");
  expect(storage.status).toMatchObject({ storage: "filesystem", state: "failing", failures: 2 });
  expect(storage.status.reason).toContain("ENOTDIR");

  rmSync(join(dir, "tmp"));
  mkdirSync(join(dir, "tmp"));
  const stored = await storage.open(sha256(bytes));
  expect(storage.status).toEqual({ storage: "filesystem", state: "up", failures: 2 });
  expect(new TextDecoder().decode(await new Response(stored!.stream(0, bytes.length - 1)).arrayBuffer())).toBe("watched");

  // A local file's stream is handed on unwrapped (hits are served by its path; the wrapper cost
  // cached manifests a fifth of their rate): gone between lookup and read, the read still fails,
  // uncounted. A bucket's stream is watched: tests/cache/s3-blob-cache.test.ts.
  expect(stored!.path).toBeDefined();
  await storage.delete(sha256(bytes));
  await expect(new Response(stored!.stream(0, bytes.length - 1)).arrayBuffer()).rejects.toThrow();
  expect(storage.status).toEqual({ storage: "filesystem", state: "up", failures: 2 });
});

test("a store that could not be opened is failing from the start, with why", () => {
  expect(WatchedStorage.unusable("s3", "listing bucket docxy failed")).toEqual({ storage: "s3", state: "failing", reason: "listing bucket docxy failed", failures: 1 });
});

test("a store that failed before it was wrapped (a bucket down at start) is failing until an operation reaches it", async () => {
  const storage = new WatchedStorage(await FsStorage.open(join(root, "late")), "s3", "listing bucket docxy failed: ConnectionRefused");
  expect(storage.status).toEqual({ storage: "s3", state: "failing", reason: "listing bucket docxy failed: ConnectionRefused", failures: 1 });
  expect(await storage.open(sha256(new Uint8Array(1)))).toBeUndefined();
  expect(storage.status).toEqual({ storage: "s3", state: "up", failures: 1 });
});
