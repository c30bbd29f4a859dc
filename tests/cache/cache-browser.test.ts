/**
 * The cache browser (cache/cache-browser.ts) over a real cache filled from
 * the real test registry: repositories, tags, the platforms of an index,
 * sizes that are the images' real blob sizes, partial pulls, paging.
 * In a real browser, through the binary:
 * tests/integration/http/status-page-browser.test.ts.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CacheBrowser } from "../../src/cache/cache-browser";
import { FsStorage } from "../../src/cache/fs-storage";
import { SqliteIndex } from "../../src/cache/sqlite-index";
import { ALL_MANIFESTS, waitFor } from "../support/cache/harness";
import { inProcessSuite, type InProcessCache } from "../support/cache/in-process";
import type { TestImage } from "../support/images";
import type { Upstream } from "../support/upstream";

let upstream: Upstream;
let cache: InProcessCache;
inProcessSuite((parts) => ({ upstream, cache } = parts));

const read = async (kind: "manifests" | "blobs", repository: string, reference: string) => {
  const response = await cache.front.answer(cache.request(kind, repository, reference, { headers: { accept: ALL_MANIFESTS } }));
  expect(response.status).toBe(200);
  await response.arrayBuffer();
};

/** Pulls a tag as a client does: the tag, then each platform's manifest, config and layers (all platforms unless named). */
async function pull(image: TestImage, tag: string, platforms?: string[]) {
  await read("manifests", image.repository, tag);
  for (const m of image.manifests) {
    const name = [m.platform.os, m.platform.architecture, m.platform.variant].filter(Boolean).join("/");
    if (platforms && !platforms.includes(name)) continue;
    if (image.index) await read("manifests", image.repository, m.digest);
    for (const blob of [m.config, ...m.layers]) await read("blobs", image.repository, blob.digest);
  }
}

/** The real bytes of an image: every manifest, config and layer once. */
const sizeOf = (image: TestImage, platforms = image.manifests) => {
  const blobs = new Map<string, number>(image.index && platforms === image.manifests ? [[image.index.digest, image.index.size]] : []);
  for (const m of platforms) for (const b of [m, m.config, ...m.layers]) blobs.set(b.digest, b.size);
  return [...blobs.values()].reduce((a, b) => a + b, 0);
};

test("repositories list with their tags and bytes; a tag of an index shows its platforms with their real sizes", async () => {
  const { alpine, app } = upstream.images;
  await pull(alpine, "latest");
  await pull(alpine, "3.20");
  await pull(app, "v1");
  const browser = new CacheBrowser(cache.index, cache.storage);

  const list = browser.repositories({ limit: 50, publicOnly: false });
  expect(list.next).toBeUndefined();
  expect(list.repositories.map((r) => `${r.upstream}/${r.repository}:${r.tags}`)).toEqual(["dockerhub/acme/app:1", "dockerhub/library/alpine:2"]);
  const alpineRow = list.repositories.find((r) => r.repository === "library/alpine")!;
  expect(alpineRow.bytes).toBe(sizeOf(alpine)); // both tags name the same index
  expect(alpineRow.lastAccess).toBeGreaterThan(0);
  expect(alpineRow.pinned).toBe(false);

  const view = await browser.repository("dockerhub", "library/alpine", 100);
  expect(view.more).toBe(false);
  expect(view.tags.map((t) => [t.tag, t.digest, t.mediaType, t.size, t.cachedBytes, t.pinned])).toEqual([
    ["3.20", alpine.digest, alpine.mediaType, sizeOf(alpine), sizeOf(alpine), false],
    ["latest", alpine.digest, alpine.mediaType, sizeOf(alpine), sizeOf(alpine), false],
  ]);
  const latest = view.tags[1]!;
  expect(latest.lastPulled).toBeGreaterThanOrEqual(latest.fetchedAt);
  expect(latest.platforms).toEqual(
    alpine.manifests.map((m) => ({ platform: m.platform.variant ? "linux/arm64/v8" : "linux/amd64", digest: m.digest, size: sizeOf(alpine, [m]), cachedBytes: sizeOf(alpine, [m]), complete: true })),
  );

  const single = await browser.repository("dockerhub", "acme/app", 100);
  expect(single.tags.map((t) => [t.tag, t.size, t.cachedBytes, t.platforms.length])).toEqual([["v1", sizeOf(app), sizeOf(app), 0]]);
});

test("pinned: a repository a pin names, and a tag whose content the index holds pinned (what eviction skips)", async () => {
  const { alpine, app } = upstream.images;
  await pull(alpine, "latest");
  await pull(app, "v1");
  cache.index.pin("docker.io/acme/app:v1", [app.digest], true);
  const browser = new CacheBrowser(cache.index, cache.storage, (upstream, repository) => upstream === "dockerhub" && repository === "acme/app");
  const rows = browser.repositories({ limit: 50, publicOnly: false }).repositories;
  expect(rows.map((r) => [r.repository, r.pinned])).toEqual([
    ["acme/app", true],
    ["library/alpine", false],
  ]);
  expect((await browser.repository("dockerhub", "acme/app", 10)).tags.map((t) => [t.tag, t.pinned])).toEqual([["v1", true]]);
  expect((await browser.repository("dockerhub", "library/alpine", 10)).tags.every((t) => !t.pinned)).toBe(true);
  cache.index.retainPins([]);
});

test("a platform never pulled is incomplete; layers shared by platforms count once per image; content gone shows as not cached", async () => {
  const { nginx } = upstream.images;
  const [amd64, arm64] = nginx.manifests as [TestImage["manifests"][0], TestImage["manifests"][0]];
  await pull(nginx, "latest", ["linux/amd64"]);
  const browser = new CacheBrowser(cache.index, cache.storage);
  let tag = (await browser.repository("dockerhub", "library/nginx", 100)).tags[0]!;
  expect(tag.platforms.map((p) => [p.platform, p.complete, p.size, p.cachedBytes])).toEqual([
    ["linux/amd64", true, sizeOf(nginx, [amd64]), sizeOf(nginx, [amd64])],
    ["linux/arm64/v8", false, arm64.size, 0], // its manifest alone is known
  ]);
  expect(tag.cachedBytes).toBe(nginx.index!.size + sizeOf(nginx, [amd64]));

  await pull(nginx, "latest", ["linux/arm64/v8"]);
  tag = (await browser.repository("dockerhub", "library/nginx", 100)).tags[0]!;
  expect(tag.platforms.every((p) => p.complete)).toBe(true);
  expect(tag.size).toBe(sizeOf(nginx));
  const shared = amd64.layers.find((l) => arm64.layers.some((m) => m.digest === l.digest))!;
  expect(tag.size).toBe(nginx.index!.size + sizeOf(nginx, [amd64]) + sizeOf(nginx, [arm64]) - shared.size);

  const layer = arm64.layers[0]!;
  cache.index.removeBlob(layer.digest);
  await cache.storage.delete(layer.digest);
  tag = (await browser.repository("dockerhub", "library/nginx", 100)).tags[0]!;
  expect(tag.size).toBe(sizeOf(nginx));
  expect(tag.cachedBytes).toBe(sizeOf(nginx) - layer.size);
});

test("a repository's tags are bounded: the first by name, and whether there are more", async () => {
  const { manytags } = upstream.images;
  for (const tag of manytags.tags.slice(0, 3)) await read("manifests", manytags.repository, tag);
  const view = await new CacheBrowser(cache.index, cache.storage).repository("dockerhub", manytags.repository, 2);
  expect(view.tags.map((t) => t.tag)).toEqual(["t000", "t001"]);
  expect(view.more).toBe(true);
  expect((await new CacheBrowser(cache.index, cache.storage).repository("dockerhub", "never/pulled", 10)).tags).toEqual([]);
});

test("without the admin token only repositories the access gate found public are listed", async () => {
  // The gate learns in the background whether docxy itself may read a repository.
  await waitFor(() => cache.index.getRepositoryAccess("dockerhub", "acme/app") !== undefined, "acme/app's access learnt");
  const publicOnly = new CacheBrowser(cache.index, cache.storage).repositories({ limit: 50, publicOnly: true });
  const known = ["acme/app", "library/alpine", "library/manytags", "library/nginx"].filter((r) => cache.index.getRepositoryAccess("dockerhub", r)?.public);
  expect(known).toContain("acme/app");
  expect(publicOnly.repositories.map((r) => r.repository)).toEqual(known);
  cache.index.putRepositoryAccess("dockerhub", "acme/app", false);
  expect(new CacheBrowser(cache.index, cache.storage).repositories({ limit: 50, publicOnly: true }).repositories.map((r) => r.repository)).not.toContain("acme/app");
});

const dir = mkdtempSync(join(tmpdir(), "docxy-browser-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("thousands of repositories come a bounded page at a time, each once, and can be searched", async () => {
  const index = SqliteIndex.open(join(dir, "index.sqlite"));
  const digest = `sha256:${"a".repeat(64)}`;
  index.putBlob(digest, 10);
  const names: string[] = [];
  for (let i = 0; i < 2500; i++) {
    const repository = `team${i % 7}/app_${String(i).padStart(4, "0")}`;
    names.push(`${i % 2 ? "ghcr" : "dockerhub"}/${repository}`);
    if (i % 3) index.putTag(i % 2 ? "ghcr" : "dockerhub", repository, "v1", "all", { digest, mediaType: "application/vnd.oci.image.manifest.v1+json", size: 10 });
    else index.putLink(i % 2 ? "ghcr" : "dockerhub", repository, digest); // pulled by digest only: no tag
  }
  const browser = new CacheBrowser(index, await FsStorage.open(dir));
  const seen: string[] = [];
  let after: string | undefined;
  let pages = 0;
  do {
    const page = browser.repositories({ after, limit: 500, publicOnly: false });
    expect(page.repositories.length).toBeLessThanOrEqual(500);
    seen.push(...page.repositories.map((r) => `${r.upstream}/${r.repository}`));
    after = page.next;
    pages++;
  } while (after);
  expect(pages).toBe(5);
  expect(seen).toEqual([...names].sort());

  // LIKE's wildcards in the search text are plain characters.
  expect(browser.repositories({ limit: 10, contains: "app_0042", publicOnly: false }).repositories.map((r) => r.repository)).toEqual(["team0/app_0042"]);
  expect(browser.repositories({ limit: 10, contains: "p_%", publicOnly: false }).repositories).toEqual([]);
  expect(browser.repositories({ limit: 3000, contains: "p_0", publicOnly: false }).repositories).toHaveLength(1000);
  index.close();
});
