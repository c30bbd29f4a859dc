/**
 * Pinned images (cache/pins.ts) in process, with docxy's services built from
 * a configuration against the real test registry: pins are fetched at start
 * with no client, a tag glob pins the listed tags that match, a repository
 * glob pins what clients pulled, and an eviction that must drop everything
 * drops nothing pinned, and a pinned tag that moves pins its new content and
 * releases the old. Through the binary: tests/integration/cache/pins.test.ts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Evictor } from "../../src/cache/eviction";
import { LocalCoordination } from "../../src/cache/local-coordination";
import { prewarm } from "../../src/cache/prewarm";
import type { Services } from "../../src/services";
import { pushManifest } from "../support/push";
import { inProcessServices } from "../support/services";
import { startUpstream, upstreamEntryToml, type TestImage, type Upstream } from "../support/upstream";

let upstream: Upstream;
let services: Services;

beforeAll(async () => {
  upstream = await startUpstream();
  // tag_ttl 1s: the keeper's rounds follow each other quickly, so the repository glob sees a pull soon.
  const pins = ["alpine:3.20 linux/amd64", "library/manytags:t00*", "docker.io/acme/*:v*"].map((p) => JSON.stringify(p)).join(", ");
  services = (await inProcessServices(`${upstreamEntryToml(upstream)}[cache]\ntag_ttl = "1s"\npin = [${pins}]\n`)).services;
}, 60_000);
afterAll(async () => {
  services?.pins?.stop();
  await upstream?.stop();
});

/** Every digest an image's pull for `arch` (all when undefined) stores: index, manifests, configs, layers. */
function contentOf(image: TestImage, arch?: string): string[] {
  const manifests = image.manifests.filter((m) => arch === undefined || m.platform.architecture === arch);
  return [...new Set([image.digest, ...manifests.flatMap((m) => [m.digest, m.config.digest, ...m.layers.map((l) => l.digest)])])];
}

async function stored(): Promise<string[]> {
  const digests: string[] = [];
  for await (const blob of services.cache!.storage.list()) digests.push(blob.digest);
  return digests.sort();
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 300 && !condition(); i++) await Bun.sleep(100);
  if (!condition()) throw new Error(`never happened: ${what}`);
}

test("pinned images missing at start are fetched with no client: the chosen platform only, every tag a glob lists", async () => {
  await services.pins!.round(); // the round started at start
  const { alpine, manytags } = upstream.images;
  const index = services.cache!.index;
  const expected = [...contentOf(alpine, "amd64"), ...contentOf(manytags)];
  for (const digest of expected) expect(index.isPinned(digest)).toBe(true);
  const arm64 = alpine.manifests.find((m) => m.platform.architecture === "arm64")!;
  expect(index.getBlob(arm64.digest)).toBeUndefined();
  expect(await stored()).toEqual([...expected].sort());
  // t000..t009 of the 120 tags, read from the registry's tag list.
  const tags = index.tags(1000).filter((t) => t.repository === "library/manytags").map((t) => t.tag);
  expect(tags.sort()).toEqual(Array.from({ length: 10 }, (_, i) => `t00${i}`));
  expect(index.pinned().entries).toBe(expected.length);
});

test("a repository glob pins what a client pulled; an eviction that must drop everything drops only what is not pinned", async () => {
  const { alpine, manytags, app, nginx } = upstream.images;
  // Pulled as a client pull would fill the cache: acme/app falls under the glob, nginx under no pin.
  for (const image of ["acme/app:v1", "nginx:latest"]) for await (const _ of prewarm(services.reads, services.upstreams, image)) void _;
  const index = services.cache!.index;
  await until(() => contentOf(app).every((d) => index.isPinned(d)), "acme/app pinned by docker.io/acme/*:v*");
  for (const digest of contentOf(nginx)) expect(index.isPinned(digest)).toBe(false);

  const { storage } = services.cache!;
  const evicted = await new Evictor({ index, storage, coordination: new LocalCoordination(), inUse: () => false, maxBytes: 0, maxAgeMs: 0 }).run();
  const pinned = [...new Set([...contentOf(alpine, "amd64"), ...contentOf(manytags), ...contentOf(app)])].sort();
  expect(await stored()).toEqual(pinned);
  expect(evicted.removed).toBe(contentOf(nginx).filter((d) => !pinned.includes(d)).length);
  expect(index.pinned()).toEqual({ bytes: index.totalBytes(), entries: pinned.length });
});

test("a pinned tag that moved upstream is refreshed on its TTL: the new content pinned, the old released to eviction", async () => {
  const { alpine } = upstream.images;
  const amd64 = alpine.manifests.find((m) => m.platform.architecture === "amd64")!;
  const index = services.cache!.index;
  expect(index.isPinned(alpine.digest)).toBe(true);
  // alpine:3.20 now names the amd64 image alone instead of the list.
  const push = { authorization: `Bearer ${await upstream.token("repository:library/alpine:pull,push", "alice")}` };
  await pushManifest(upstream.registryUrl, "library/alpine", { reference: "3.20", mediaType: amd64.mediaType, digest: amd64.digest, bytes: amd64.bytes }, push);
  await until(() => !index.isPinned(alpine.digest), "the list released once the tag moved");
  for (const digest of [amd64.digest, amd64.config.digest, ...amd64.layers.map((l) => l.digest)]) expect(index.isPinned(digest)).toBe(true);
  expect(index.getBlob(alpine.digest)).toBeDefined(); // still cached, only evictable now
});
