/**
 * `[cache] storage = "s3"` through the binary, against the real test registry and a real Swift
 * (tests/support/swift.ts): skopeo copies an image through one node (cold), then through a second
 * node with its own cache directory on the same bucket, which gets every blob from the bucket and
 * none from the upstream. `/health` and `/metrics` show the storage; a node started while the
 * bucket is down says so, forwards, and fills the bucket once it is back, with no restart;
 * `check-config` names the bucket, says whether it answers, and never shows the secret.
 * The cache on S3 in process, with its failure paths: tests/cache/s3-blob-cache.test.ts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DOCXY_BIN } from "../../support/docxy-process";
import { newCacheDir, registryLines, registryLogSettled, registryToml, startCachingDocxy, waitFor, type CachingDocxy } from "../../support/cache/harness";
import { skopeoCopyOk } from "../../support/skopeo";
import { startSwift, type Swift } from "../../support/swift";
import { startUpstream, type Upstream } from "../../support/upstream";

const BUCKET = "docxy-fleet";
let upstream: Upstream;
let swift: Swift;
const started: CachingDocxy[] = [];
const scratch = mkdtempSync(join(tmpdir(), "docxy-s3-storage-"));

beforeAll(async () => {
  [upstream, swift] = await Promise.all([startUpstream({ onlyThroughProxy: true }), startSwift()]);
  await swift.createBucket(BUCKET);
}, 120_000);
afterAll(async () => {
  await Promise.all(started.map((d) => d.stop()));
  await Promise.all([swift?.stop(), upstream?.stop()]);
  rmSync(scratch, { recursive: true, force: true });
});

/** The bucket's keys come from the environment, each node another way: AWS_* here, DOCXY_CACHE_S3_* there. */
function s3Toml(): string {
  return `[cache]\nstorage = "s3"\n[cache.s3]\nendpoint = "${swift.endpoint}"\nbucket = "${BUCKET}"\nregion = "${swift.region}"\n`;
}

async function node(env: Record<string, string>): Promise<CachingDocxy> {
  const d = await startCachingDocxy(registryToml(upstream) + s3Toml(), { cacheDir: newCacheDir(), env });
  started.push(d);
  return d;
}

const awsEnv = () => ({ AWS_ACCESS_KEY_ID: swift.accessKeyId, AWS_SECRET_ACCESS_KEY: swift.secretAccessKey });
const docxyEnv = () => ({ DOCXY_CACHE_S3_ACCESS_KEY_ID: swift.accessKeyId, DOCXY_CACHE_S3_SECRET_ACCESS_KEY: swift.secretAccessKey });
const hostOf = (d: CachingDocxy) => new URL(d.url).host;
const cdnBlobGets = () => upstream.cdnLog.filter((r) => r.method === "GET").length;

async function entries(d: CachingDocxy): Promise<number> {
  const metrics = await (await fetch(`${d.url}/metrics`)).text();
  return Number(/^docxy_cache_entries (\d+)$/m.exec(metrics)?.[1]);
}

async function health(d: CachingDocxy): Promise<{ status: string; cache?: { storage: string; state: string; reason?: string } }> {
  return (await fetch(`${d.url}/health`)).json() as never;
}

test("images copied through one node are copied through another on the same bucket with no blob or manifest GET upstream", async () => {
  const { app } = upstream.images;
  const first = await node(awsEnv());
  const beforeCold = cdnBlobGets();
  const cold = await skopeoCopyOk(hostOf(first), "acme/app:v1");
  const blobs = Object.keys(cold).filter((file) => file !== "manifest.json" && file !== "version");
  // The config and both layers, each once from the upstream's CDN.
  expect(blobs.sort()).toEqual([app.manifests[0]!.config.digest, ...app.manifests[0]!.layers.map((l) => l.digest)].map((d) => d.slice(7)).sort());
  for (const blob of blobs) expect(cold[blob]).toBe(`sha256:${blob}`);
  expect(cdnBlobGets() - beforeCold).toBe(blobs.length);

  const second = await node(docxyEnv());
  expect(second.cacheDir).not.toBe(first.cacheDir);
  // Its index holds what it served: nothing yet, though the bucket it listed holds the first node's content.
  await waitFor(() => second.log().includes("cache index matched to the bucket"), "the second node's listing");
  expect(await entries(second)).toBe(0);
  const beforeWarm = cdnBlobGets();
  const warm = await skopeoCopyOk(hostOf(second), "acme/app:v1");
  expect(warm).toEqual(cold); // same files, same digests
  expect(cdnBlobGets() - beforeWarm).toBe(0);
  expect(await entries(second)).toBe(blobs.length + 1); // adopted: the blobs and the manifest

  // A multi-arch image: the index by tag, then its platform's manifest by digest, both from the bucket on node 2.
  const manifestGets = async () => {
    await registryLogSettled(upstream);
    return registryLines(upstream, /"GET \/v2\/library\/alpine\/manifests\//).length;
  };
  const alpine = await skopeoCopyOk(hostOf(first), "library/alpine:latest");
  const [gets, cdn] = [await manifestGets(), cdnBlobGets()];
  expect(await skopeoCopyOk(hostOf(second), "library/alpine:latest")).toEqual(alpine);
  expect(cdnBlobGets()).toBe(cdn);
  expect(await manifestGets()).toBe(gets); // the tag revalidated by a HEAD only

  for (const d of [first, second]) {
    expect(await health(d)).toMatchObject({ cache: { storage: "s3", state: "up" } });
    const metrics = await (await fetch(`${d.url}/metrics`)).text();
    expect(metrics).toContain("docxy_cache_storage_failures_total 0");
    expect(d.log()).not.toContain(swift.secretAccessKey);
  }
}, 180_000);

test("check-config names the bucket and where its keys come from, never the secret; a missing key is named", async () => {
  const path = join(scratch, "s3.toml");
  await Bun.write(path, s3Toml());
  const run = async (env: Record<string, string>) => {
    const child = Bun.spawn([DOCXY_BIN, "check-config", path], { env: { PATH: process.env.PATH ?? "", ...env }, stdout: "pipe", stderr: "pipe" });
    const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
    return { stdout, stderr, code };
  };
  const ok = await run({ ...awsEnv(), DOCXY_CACHE_S3_PREFIX: "eu/" });
  expect(ok.code).toBe(0);
  expect(ok.stdout).toContain(`storage: s3 bucket ${BUCKET} (prefix eu/) at ${swift.endpoint}, region us-east-1, access key from AWS_ACCESS_KEY_ID`);
  expect(ok.stdout).toContain(`  bucket ${BUCKET} at ${swift.endpoint}: reachable\n`);
  expect(ok.stdout + ok.stderr).not.toContain(swift.secretAccessKey);
  const missing = await run({ AWS_ACCESS_KEY_ID: swift.accessKeyId });
  expect(missing.code).toBe(2);
  expect(missing.stderr).toContain("cache.s3.secret_access_key: required (or AWS_SECRET_ACCESS_KEY in the environment)");
});

test("a node started while the bucket is down says so plainly, forwards, and fills the bucket once it is back, with no restart", async () => {
  const path = join(scratch, "down.toml");
  await Bun.write(path, s3Toml());
  const checkConfig = async (env: Record<string, string>) => {
    const child = Bun.spawn([DOCXY_BIN, "check-config", path], { env: { PATH: process.env.PATH ?? "", ...awsEnv(), ...env }, stdout: "pipe", stderr: "pipe" });
    const [stdout, code] = await Promise.all([new Response(child.stdout).text(), child.exited]);
    return { stdout, code };
  };
  await swift.killProxy();
  let d: CachingDocxy;
  try {
    // check-config reports the bucket down; it fails only where a node would not start.
    const degraded = await checkConfig({});
    expect(degraded.code).toBe(0);
    expect(degraded.stdout).toContain(`  bucket ${BUCKET} at ${swift.endpoint}: unreachable (listing bucket ${BUCKET}`);
    expect((await checkConfig({ DOCXY_FLEET_ON_UNREACHABLE: "exit" })).code).toBe(1);

    d = await node(awsEnv());
    expect(d.log()).toContain("bucket cannot be reached at start: starting degraded");
    expect(d.log()).toContain("cache: the bucket does not answer; pulls go to the upstream until it does");
    expect(d.log()).toContain(`bucket=${BUCKET}`);
    const report = await health(d);
    expect(report.status).toBe("degraded");
    expect(report.cache).toMatchObject({ storage: "s3", state: "failing" });
    expect(report.cache?.reason).toContain(`listing bucket ${BUCKET}`);
    const before = cdnBlobGets();
    const copied = await skopeoCopyOk(hostOf(d), "library/nginx:latest");
    expect(Object.keys(copied)).toContain("manifest.json");
    expect(cdnBlobGets() - before).toBeGreaterThan(0); // straight from the upstream
  } finally {
    await swift.restartProxy();
  }
  // The bucket is back: this node's next pull fills it, and another node then gets every blob from it.
  const refilled = cdnBlobGets();
  const again = await skopeoCopyOk(hostOf(d), "library/nginx:latest");
  expect(cdnBlobGets() - refilled).toBeGreaterThan(0); // nothing was committed while the bucket was down
  expect(await health(d)).toMatchObject({ cache: { storage: "s3", state: "up" } });
  const other = await node(awsEnv());
  const fromBucket = cdnBlobGets();
  expect(await skopeoCopyOk(hostOf(other), "library/nginx:latest")).toEqual(again);
  expect(cdnBlobGets()).toBe(fromBucket);
  expect(d.log()).not.toContain(swift.secretAccessKey);
}, 120_000);
