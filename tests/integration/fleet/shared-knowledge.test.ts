/**
 * What the nodes learn from the upstream is the fleet's (issue 16), through
 * three docxy binaries on one Redis and one bucket (Swift), in front of the
 * real test registry, whose access log counts what reached the upstream:
 * - a tag pulled through one node costs the other nodes no request for it
 *   within the tag's TTL (they adopt its answer, with its age);
 * - after the TTL, the three nodes asked at once revalidate it with ONE HEAD;
 * - a repository one node found public is public for the others: a blob of
 *   it in the bucket is served by another node without its own HEAD upstream.
 * No client's Authorization ends up in Redis, keys or values.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { RedisClient } from "bun";
import { ALL_MANIFESTS, docxyToken, readFully, registryLines, registryLogSettled, sha256, waitFor } from "../../support/cache/harness";
import type { Docxy } from "../../support/docxy-process";
import { getBlob, startNode } from "../../support/fleet";
import { startRedis, type Redis } from "../../support/redis";
import { startSwift, type Swift } from "../../support/swift";
import { registryToml, startUpstream, type Upstream } from "../../support/upstream";

const BUCKET = "docxy-knowledge";
const TAG_TTL_MS = 5_000;

let upstream: Upstream;
let redis: Redis;
let swift: Swift;
let probe: RedisClient;
let nodes: Docxy[] = [];
/** Every Authorization a client sent: none may reach Redis. */
const sent: string[] = [];

beforeAll(async () => {
  [upstream, redis, swift] = await Promise.all([startUpstream(), startRedis(), startSwift()]);
  await swift.createBucket(BUCKET);
  probe = new RedisClient(redis.url);
  const cache =
    `[cache]\nstorage = "s3"\ntag_ttl = "${TAG_TTL_MS / 1000}s"\n[cache.s3]\nendpoint = "${swift.endpoint}"\nbucket = "${BUCKET}"\n` +
    `region = "${swift.region}"\naccess_key_id = "${swift.accessKeyId}"\nsecret_access_key = "${swift.secretAccessKey}"\n`;
  nodes = await Promise.all([0, 1, 2].map(() => startNode(registryToml(upstream) + cache, redis.url)));
}, 120_000);

afterAll(async () => {
  probe?.close();
  await Promise.all(nodes.map((n) => n.stop()));
  await Promise.all([upstream?.stop(), redis?.stop(), swift?.stop()]);
});

async function authorization(node: Docxy, repository: string): Promise<string> {
  const value = `Bearer ${await docxyToken(node.url, repository)}`;
  sent.push(value);
  return value;
}

async function manifest(node: Docxy, repository: string, tag: string) {
  const response = await fetch(`${node.url}/v2/${repository}/manifests/${tag}`, {
    headers: { accept: ALL_MANIFESTS, authorization: await authorization(node, repository) },
  });
  return { status: response.status, cache: response.headers.get("x-cache"), digest: sha256(new Uint8Array(await response.arrayBuffer())) };
}

/** Requests that reached the registry for `path` (settled first: an absent line is proof). */
async function upstreamRequests(method: string, path: string): Promise<number> {
  await registryLogSettled(upstream);
  return registryLines(upstream, new RegExp(`"${method} ${path.replaceAll("/", "\\/")} `)).length;
}

/** The fleet knows whether docxy may read `repository` (node 1 learns it in the background after a fetch). */
const knownAccess = async (repository: string) => ((await probe.send("KEYS", [`docxy:access:*/${repository}`])) as string[]).length === 1;

let pulledAt = 0;

test("a tag pulled through one node: the two others serve it within its TTL with no request upstream for it", async () => {
  const { app } = upstream.images;
  const first = await manifest(nodes[0]!, "acme/app", "v1");
  pulledAt = Date.now();
  expect(first).toEqual({ status: 200, cache: "MISS", digest: app.digest });
  await waitFor(() => knownAccess("acme/app"), "the fleet to know acme/app is public");
  const others = await Promise.all([nodes[1]!, nodes[2]!].map((n) => manifest(n, "acme/app", "v1")));
  expect(Date.now() - pulledAt).toBeLessThan(TAG_TTL_MS); // still within the TTL: otherwise the counts below mean nothing
  expect(others).toEqual([
    { status: 200, cache: "HIT", digest: app.digest },
    { status: 200, cache: "HIT", digest: app.digest },
  ]);
  // Node 1's HEAD by tag; its GET was by digest. Nodes 2 and 3 asked nothing about the tag.
  expect(await upstreamRequests("HEAD", "/v2/acme/app/manifests/v1")).toBe(1);
  expect(await upstreamRequests("GET", "/v2/acme/app/manifests/v1")).toBe(0);
}, 60_000);

test("after the tag's TTL, the three nodes asked at once: one HEAD upstream revalidates it for all", async () => {
  const { app } = upstream.images;
  expect(pulledAt).toBeGreaterThan(0);
  await Bun.sleep(Math.max(0, pulledAt + TAG_TTL_MS + 200 - Date.now()));
  const before = await upstreamRequests("HEAD", "/v2/acme/app/manifests/v1");
  const answers = await Promise.all(nodes.map((n) => manifest(n, "acme/app", "v1")));
  expect(answers.map((a) => [a.status, a.digest])).toEqual(Array(3).fill([200, app.digest]));
  expect(answers.map((a) => a.cache).sort()).toEqual(["HIT", "HIT", "REVALIDATED"]);
  expect((await upstreamRequests("HEAD", "/v2/acme/app/manifests/v1")) - before).toBe(1);
  expect(await upstreamRequests("GET", "/v2/acme/app/manifests/v1")).toBe(0);
}, 60_000);

test("a repository found public by one node: another node serves a blob of it from the bucket with no HEAD upstream", async () => {
  const layer = upstream.images.alpine.manifests[0]!.layers[0]!;
  const blobPath = `/v2/library/alpine/blobs/${layer.digest}`;
  const first = await getBlob(nodes[0]!, "library/alpine", layer.digest, { authorization: await authorization(nodes[0]!, "library/alpine") });
  expect(first.status).toBe(200);
  expect(sha256((await readFully(first)).bytes)).toBe(layer.digest);
  await waitFor(() => knownAccess("library/alpine"), "the fleet to know library/alpine is public");
  const heads = await upstreamRequests("HEAD", blobPath);
  const gets = await upstreamRequests("GET", blobPath);
  const cdnGets = upstream.cdnLog.length;

  const second = await getBlob(nodes[1]!, "library/alpine", layer.digest, { authorization: await authorization(nodes[1]!, "library/alpine") });
  expect(second.status).toBe(200);
  expect(sha256((await readFully(second)).bytes)).toBe(layer.digest);
  expect(await upstreamRequests("HEAD", blobPath)).toBe(heads);
  expect(await upstreamRequests("GET", blobPath)).toBe(gets);
  expect(upstream.cdnLog.length).toBe(cdnGets);
}, 60_000);

test("no Authorization a client sent is in Redis, as a key or a value", async () => {
  expect(sent.length).toBeGreaterThan(0);
  const keys = (await probe.send("KEYS", ["*"])) as string[];
  expect(keys.some((k) => k.startsWith("docxy:link:"))).toBe(true);
  for (const key of keys) {
    const value = (await probe.send("TYPE", [key])) === "string" ? String(await probe.get(key)) : "";
    for (const header of sent) {
      const token = header.slice("Bearer ".length);
      expect(key).not.toContain(token);
      expect(value).not.toContain(token);
    }
  }
});
