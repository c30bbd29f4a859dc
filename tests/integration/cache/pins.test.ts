/**
 * Pinned images through the binary, against the real upstream: a pin missing
 * at start is fetched with no client request, and with max_size far below
 * what clients pull, eviction drops everything else and leaves exactly the
 * pinned image's files; /health, /admin/cache and the metrics count it apart;
 * a client's pull of it is a HIT. In process: tests/cache/pins.test.ts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { ALL_MANIFESTS, docxyToken, registryToml, sha256, startCachingDocxy, waitFor, type CachingDocxy } from "../../support/cache/harness";
import { startUpstream, type Upstream } from "../../support/upstream";

const ADMIN = "admin-token-for-pin-tests-0123456";
let upstream: Upstream;
let docxy: CachingDocxy;

beforeAll(async () => {
  upstream = await startUpstream({ onlyThroughProxy: true });
  // max_size 1 byte: anything not pinned goes as soon as a fill commits; fills themselves may be large.
  docxy = await startCachingDocxy(
    `${registryToml(upstream)}[cache]\nmax_size = 1\nmax_fill_bytes = "100MiB"\npin = ["alpine:3.20 linux/amd64"]\n[admin]\ntoken = "${ADMIN}"\n`,
  );
}, 60_000);
afterAll(async () => {
  await docxy?.stop();
  await upstream?.stop();
});

const admin = async (path: string) => (await fetch(`${docxy.url}/admin${path}`, { headers: { authorization: `Bearer ${ADMIN}` } })).json() as Promise<any>;
const files = () => readdirSync(join(docxy.cacheDir, "blobs", "sha256")).map((hex) => `sha256:${hex}`).sort();

function alpineAmd64(): string[] {
  const { alpine } = upstream.images;
  const amd64 = alpine.manifests.find((m) => m.platform.architecture === "amd64")!;
  return [alpine.digest, amd64.digest, amd64.config.digest, ...amd64.layers.map((l) => l.digest)].sort();
}

async function pull(repository: string, reference: string): Promise<{ cache: string | null; digest: string | null }[]> {
  const headers = { authorization: `Bearer ${await docxyToken(docxy.url, repository)}` };
  const top = await fetch(`${docxy.url}/v2/${repository}/manifests/${reference}`, { headers: { ...headers, accept: ALL_MANIFESTS } });
  const answers = [{ cache: top.headers.get("x-cache"), digest: top.headers.get("docker-content-digest") }];
  const manifest = (await top.json()) as { manifests?: { digest: string; platform: { architecture: string } }[]; config?: { digest: string }; layers?: { digest: string }[] };
  const child = manifest.manifests?.find((m) => m.platform.architecture === "amd64");
  const image = child ? await fetch(`${docxy.url}/v2/${repository}/manifests/${child.digest}`, { headers: { ...headers, accept: ALL_MANIFESTS } }) : undefined;
  const body = image ? ((await image.json()) as typeof manifest) : manifest;
  for (const blob of [body.config!, ...body.layers!]) {
    const response = await fetch(`${docxy.url}/v2/${repository}/blobs/${blob.digest}`, { headers });
    answers.push({ cache: response.headers.get("x-cache"), digest: sha256(await response.arrayBuffer()) });
  }
  return answers;
}

test("a pin missing at start is fetched with no client request, the chosen platform only", async () => {
  const expected = alpineAmd64();
  await waitFor(async () => (await admin("/cache")).pinned_entries === expected.length, "the pinned image fetched", 30_000);
  expect(files()).toEqual(expected);
  const health = (await (await fetch(`${docxy.url}/health`)).json()) as { cache: { pinned_bytes: number; pinned_entries: number } };
  const stats = await admin("/cache");
  expect(health.cache).toMatchObject({ pinned_bytes: stats.bytes, pinned_entries: expected.length });
  expect(docxy.log()).not.toContain("/v2/library/alpine"); // no client asked for it (the access log names client requests)
});

test("eviction under a max_size far too small drops everything a client pulled and nothing pinned; the pinned image pulls as HITs", async () => {
  const app = await pull("acme/app", "v1");
  expect(app.every((a) => a.cache === "MISS")).toBe(true);
  const pinned = alpineAmd64();
  // The client has a MISS's bytes before its commit: what was pulled is gone only once no fill is
  // left and the index agrees with the directory (a file not yet renamed into place looked gone).
  const settled = async () => {
    const stats = await admin("/cache");
    return stats.fills_in_progress === 0 && stats.entries === pinned.length && files().join() === pinned.join();
  };
  await waitFor(settled, "eviction of everything not pinned", 30_000);
  const stats = await admin("/cache");
  expect(stats).toMatchObject({ pinned_bytes: stats.bytes, pinned_entries: pinned.length, entries: pinned.length });
  const metrics = await (await fetch(`${docxy.url}/metrics`)).text();
  expect(metrics).toContain(`docxy_cache_pinned_bytes ${stats.bytes}\n`);
  expect(metrics).toContain(`docxy_cache_pinned_entries ${pinned.length}\n`);

  const alpine = await pull("library/alpine", "3.20");
  expect(alpine.map((a) => a.cache)).toEqual(alpine.map(() => "HIT"));
  const { alpine: image } = upstream.images;
  const amd64 = image.manifests.find((m) => m.platform.architecture === "amd64")!;
  expect(alpine.map((a) => a.digest)).toEqual([image.digest, amd64.config.digest, ...amd64.layers.map((l) => l.digest)]);
  expect(files()).toEqual(pinned);
});
