/**
 * Opening the cache in process (cache/open-cache.ts) from a loaded `[cache]`
 * section, in front of the real test registry: a usable directory gives the
 * cache front and the parts the operator side reads; a disabled cache, or a
 * directory that cannot be used, gives the bare pass-through; a corrupt index
 * is replaced. Through the binary, with skopeo: tests/integration/cache/open-cache.test.ts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CredentialMemory } from "../../src/auth/credential-memory";
import { CacheFront } from "../../src/cache/cache-front";
import { IN_THREAD } from "../../src/cache/hashing";
import { OffThreadHashing } from "../../src/cache/hashing-thread";
import { hashingFor, openCache } from "../../src/cache/open-cache";
import { loadConfig } from "../../src/config/load";
import { createLogger } from "../../src/observability/logger";
import { countingPassThrough, digestOf, readsOf } from "../support/cache/in-process";
import { startUpstream, type Upstream } from "../support/upstream";

let upstream: Upstream;
const root = mkdtempSync(join(tmpdir(), "docxy-open-cache-"));
writeFileSync(join(root, "none.toml"), ""); // no config file but the keys each test sets
beforeAll(async () => {
  upstream = await startUpstream({ onlyThroughProxy: true });
}, 120_000);
afterAll(async () => {
  rmSync(root, { recursive: true, force: true });
  await upstream?.stop();
});

async function open(overrides: Record<string, string>) {
  const { config } = await loadConfig({ path: join(root, "none.toml"), env: {}, overrides });
  const remote = countingPassThrough();
  const lines: string[] = [];
  const log = createLogger("info", (line) => void lines.push(line));
  const opened = await openCache(config.cache, { remote, log, credentials: new CredentialMemory() });
  return { ...opened, remote, lines };
}

test("a usable directory: reads go through the cache front, and the blob lands in the store and the index", async () => {
  const dir = join(root, "usable");
  const { reads, cache, remote } = await open({ "cache.dir": dir });
  expect(reads).toBeInstanceOf(CacheFront);
  expect(cache?.dir).toBe(dir);
  const layer = upstream.images.app.manifests[0]!.layers[0]!;
  const request = () => readsOf(upstream).request("blobs", "acme/app", layer.digest);
  const miss = await reads.answer(request());
  expect(miss.headers.get("x-cache")).toBe("MISS");
  expect(await digestOf(miss)).toEqual({ digest: layer.digest, length: layer.size });
  expect((await reads.answer(request())).headers.get("x-cache")).toBe("HIT");
  expect(cache!.index.getBlob(layer.digest)?.size).toBe(layer.size);
  expect((await cache!.storage.open(layer.digest))?.size).toBe(layer.size);
  expect(remote.callsFor(layer.digest, "GET")).toHaveLength(1);
  cache!.index.close();
});

test("a disabled cache, or a directory that cannot be used, passes every read through", async () => {
  const blocked = join(root, "a-file");
  writeFileSync(blocked, "not a directory");
  for (const overrides of [{ "cache.enabled": "false" }, { "cache.dir": blocked }] as Record<string, string>[]) {
    const { reads, cache, remote, lines } = await open(overrides);
    expect(cache).toBeUndefined();
    const layer = upstream.images.app.manifests[0]!.layers[0]!;
    const response = await reads.answer(readsOf(upstream).request("blobs", "acme/app", layer.digest));
    expect(response.headers.get("x-cache")).toBeNull();
    expect(await digestOf(response)).toEqual({ digest: layer.digest, length: layer.size });
    expect(remote.calls.map((call) => call.kind)).toEqual(["forward"]);
    if (overrides["cache.dir"]) expect(lines.join("")).toContain("cache disabled");
  }
});

test("a corrupt index is replaced and the cache still opens", async () => {
  const dir = join(root, "corrupt");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "index.sqlite"), "this is not a database");
  const { reads, cache, lines } = await open({ "cache.dir": dir });
  expect(reads).toBeInstanceOf(CacheFront);
  expect(cache?.index.entries()).toBe(0);
  expect(lines.join("")).toContain("cache index unusable, starting a new one");
  cache!.index.close();
});

test("fills hash on a worker thread only where a core is left for it", () => {
  expect(hashingFor(2)).toBe(IN_THREAD);
  expect(hashingFor(1)).toBe(IN_THREAD);
  const spare = hashingFor(4);
  expect(spare).toBeInstanceOf(OffThreadHashing);
  (spare as OffThreadHashing).close();
});
