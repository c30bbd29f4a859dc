/**
 * A fleet of three docxy binaries on loopback (each with its own filesystem
 * cache; the shared bucket is tested with S3 storage) and one real
 * redis-server, in front of the real test registry whose CDN logs every GET:
 * a cold blob asked of all three nodes at once is downloaded from upstream
 * once for the fleet, and so is every blob of an image skopeo copies through
 * the three nodes at once. Every client's bytes are checked against the
 * digest. Redis killed during pulls: pulls keep working, /health says the
 * nodes coordinate alone, and they share again once Redis is back.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { readFully, sha256 } from "../../support/cache/harness";
import type { Docxy } from "../../support/docxy-process";
import { FLEET_SECRET, getBlob, health, startNode } from "../../support/fleet";
import { pushBlob } from "../../support/push";
import { startRedis, type Redis } from "../../support/redis";
import { skopeoCopyOk } from "../../support/skopeo";
import { registryToml, startUpstream, type Upstream } from "../../support/upstream";

const BIG = randomBytes(24 * 1024 * 1024);
const BIG_DIGEST = sha256(BIG);

let upstream: Upstream;
let redis: Redis;
let nodes: Docxy[] = [];

beforeAll(async () => {
  [upstream, redis] = await Promise.all([startUpstream(), startRedis()]);
  const push = { authorization: `Bearer ${await upstream.token("repository:acme/big:pull,push", "alice")}` };
  await pushBlob(upstream.registryUrl, "acme/big", { digest: BIG_DIGEST, size: BIG.length, data: BIG }, push);
  nodes = await Promise.all([0, 1, 2].map(() => startNode(registryToml(upstream), redis.url)));
}, 60_000);

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
  await Promise.all([upstream?.stop(), redis?.stop()]);
});

const cdnGets = (digest: string) => upstream.cdnLog.filter((r) => r.method === "GET" && r.path.endsWith(`/${digest.slice(7)}/data`)).length;

test("a cold blob asked of three nodes at once: one CDN GET for the fleet, every client gets the blob", async () => {
  const responses = await Promise.all(nodes.map((n) => getBlob(n, "acme/big", BIG_DIGEST)));
  expect(responses.map((r) => r.status)).toEqual([200, 200, 200]);
  expect(responses.map((r) => r.headers.get("content-length"))).toEqual(Array(3).fill(String(BIG.length)));
  expect(responses.map((r) => r.headers.get("x-cache")).sort()).toEqual(["COALESCED", "COALESCED", "MISS"]);
  const bodies = await Promise.all(responses.map(readFully));
  for (const body of bodies) {
    expect(body.error).toBeUndefined();
    expect(sha256(body.bytes)).toBe(BIG_DIGEST);
  }
  expect(cdnGets(BIG_DIGEST)).toBe(1);
  // A node that followed the fill streams it from the owner's store while the lease points there.
  const late = nodes.find((_, i) => responses[i]!.headers.get("x-cache") === "COALESCED")!;
  const again = await getBlob(late, "acme/big", BIG_DIGEST, { range: "bytes=1000-1999" });
  expect(again.status).toBe(206);
  expect(new Uint8Array(await again.arrayBuffer())).toEqual(new Uint8Array(BIG.subarray(1000, 2000)));
  expect(cdnGets(BIG_DIGEST)).toBe(1);
}, 60_000);

test("skopeo copies one image through the three nodes at once: one CDN GET per blob", async () => {
  const { app } = upstream.images;
  const copies = await Promise.all(nodes.map((n) => skopeoCopyOk(new URL(n.url).host, "acme/app:v1")));
  const manifest = app.manifests[0]!;
  const blobs = [manifest.config, ...manifest.layers];
  for (const files of copies) {
    for (const blob of blobs) expect(files[blob.digest.slice(7)]).toBe(blob.digest);
  }
  expect(blobs.map((b) => cdnGets(b.digest))).toEqual(blobs.map(() => 1));
}, 60_000);

test("Redis killed during pulls: pulls keep working on each node alone; Redis back: the nodes share again", async () => {
  await redis.kill();
  const copies = await Promise.all(nodes.map((n) => skopeoCopyOk(new URL(n.url).host, "library/nginx:latest")));
  const layers = upstream.images.nginx.manifests.find((m) => m.platform.architecture === "amd64") ?? upstream.images.nginx.manifests[0]!;
  for (const files of copies) expect(files[layers.config.digest.slice(7)]).toBe(layers.config.digest);
  const alone = await Promise.all(nodes.map(health));
  expect(alone.map((h) => h.fleet)).toEqual(Array(3).fill({ coordination: "local" }));
  expect(alone.map((h) => h.status)).toEqual(Array(3).fill("degraded"));
  expect(await (await fetch(`${nodes[0]!.url}/metrics`)).text()).toContain('docxy_fleet_coordination{state="local"} 1');

  await redis.restart();
  await Bun.sleep(2_100); // the nodes' back-off after a failure (fleet/redis.ts)
  const alpine = upstream.images.alpine.manifests[0]!;
  const layer = alpine.layers[0]!;
  const responses = await Promise.all(nodes.map((n) => getBlob(n, "library/alpine", layer.digest)));
  for (const response of responses) expect(sha256((await readFully(response)).bytes)).toBe(layer.digest);
  expect(responses.map((r) => r.headers.get("x-cache")).sort()).toEqual(["COALESCED", "COALESCED", "MISS"]);
  expect(cdnGets(layer.digest)).toBe(1);
  const back = await Promise.all(nodes.map(health));
  expect(back.map((h) => h.fleet)).toEqual(Array(3).fill({ coordination: "shared" }));
  expect(await (await fetch(`${nodes[0]!.url}/metrics`)).text()).toContain('docxy_fleet_coordination{state="shared"} 1');
  for (const node of nodes) {
    expect(node.log()).toContain("fleet: Redis unavailable, this node coordinates fills, counts limits and keeps tokens alone");
    expect(node.log()).toContain("fleet: Redis reachable again");
    expect(node.log()).not.toContain(FLEET_SECRET);
  }
}, 90_000);
