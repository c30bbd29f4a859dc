/**
 * A fleet of docxy nodes (issue 16) pulled by the real clients, each pointed at a different
 * node with no balancer in front ("Done means": "a 3-node fleet on loopback behind no balancer
 * (clients pointed at different nodes) pulled with skopeo, docker and containerd").
 *
 * One real upstream (distribution 2.8, its token service and CDN, which answer docxy only:
 * `onlyThroughProxy`, so a client that slipped past its node fails), one real redis-server, one
 * real Swift (tests/support/swift.ts) whose bucket every node stores its blobs in
 * (`[cache] storage = "s3"`; each node keeps its own directory for its spool and index), and
 * docxy fleet nodes on loopback: the fleet as the README describes it.
 * Docker 20.10 (`registry-mirrors`) on node 1, containerd 1.6 (ctr, hosts.toml mirror) on node 2
 * and skopeo on node 3 pull library/nginx (an OCI index nobody pulled before) at the same time:
 * every client gets the right digests, and the upstream's CDN served each blob they fetched once
 * for the whole fleet, the node that downloaded it committing it to the bucket. Then skopeo pulls
 * the image through a fourth node that served none of it, and the CDN sees no new GET at all:
 * that node serves every blob from the bucket, a HIT.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { S3Client } from "bun";
import { waitFor } from "../support/cache/harness";
import type { Docxy } from "../support/docxy-process";
import { startNode } from "../support/fleet";
import { startRedis, type Redis } from "../support/redis";
import { skopeoCopyOk } from "../support/skopeo";
import { startSwift, type Swift } from "../support/swift";
import { registryToml, startUpstream, type Upstream } from "../support/upstream";
import { containerdUnavailable, startContainerd, type Containerd } from "./support/containerd";
import { dockerdUnavailable, startDockerd, type Dockerd } from "./support/dockerd";
import { hostManifest } from "./support/images";

const skipped = {
  docker: dockerdUnavailable(),
  containerd: containerdUnavailable(),
  skopeo: existsSync("/usr/bin/skopeo") ? undefined : "/usr/bin/skopeo is missing: apt-get install -y skopeo",
};
for (const [client, why] of Object.entries(skipped)) if (why) console.warn(`SKIPPED ${client} in tests/e2e/fleet.test.ts: ${why}`);
const anyClient = Object.values(skipped).some((why) => why === undefined);

const BUCKET = "docxy-e2e-fleet";
let upstream: Upstream;
let redis: Redis;
let swift: Swift;
/** Nodes 1-3 each serve one client during the concurrent pull; node 4 serves nobody until the last test. */
let nodes: Docxy[] = [];
let dockerd: Dockerd | undefined;
let containerd: Containerd | undefined;

const hostOf = (node: Docxy) => new URL(node.url).host;

beforeAll(async () => {
  if (!anyClient) return;
  [upstream, redis, swift] = await Promise.all([startUpstream({ onlyThroughProxy: true }), startRedis(), startSwift()]);
  await swift.createBucket(BUCKET);
  nodes = await Promise.all([0, 1, 2, 3].map(() => startNode(registryToml(upstream), redis.url, { storage: { swift, bucket: BUCKET } })));
  // The daemons are started before the pull, so that their own start-up cannot stagger the clients.
  [dockerd, containerd] = await Promise.all([
    skipped.docker ? undefined : startDockerd({ mirrors: [`http://${hostOf(nodes[0]!)}`] }),
    skipped.containerd ? undefined : startContainerd({ mirrorHost: hostOf(nodes[1]!) }),
  ]);
}, 240_000);

afterAll(async () => {
  await Promise.all([dockerd?.stop(), containerd?.stop()]);
  await Promise.all(nodes.map((n) => n.stop()));
  await Promise.all([upstream?.stop(), redis?.stop(), swift?.stop()]);
}, 120_000);

/** Whether the fleet's bucket holds the blob (the key layout of src/cache/s3-storage.ts, no prefix). */
function inBucket(digest: string): Promise<boolean> {
  const { endpoint, region, accessKeyId, secretAccessKey } = swift;
  return new S3Client({ endpoint, region, accessKeyId, secretAccessKey, bucket: BUCKET }).file(`blobs/sha256/${digest.slice(7)}`).exists();
}

/** GETs the upstream's CDN answered for a blob (it stores blobs under `.../<hex>/data`). */
const cdnGets = (digest: string) => upstream.cdnLog.filter((r) => r.method === "GET" && r.path.endsWith(`/${digest.slice(7)}/data`)).length;

/** The blob GETs a node answered, with its X-Cache (HIT, MISS: it downloaded, COALESCED: it followed a fill), from its JSON access log. */
function blobGets(node: Docxy): { digest: string; status: number; cache: string | undefined }[] {
  return node
    .log()
    .split("\n")
    .filter((line) => line.startsWith("{") && line.includes('"msg":"request"'))
    .map((line) => JSON.parse(line) as { method: string; path: string; status: number; cache?: string })
    .filter((e) => e.method === "GET" && /^\/v2\/.+\/blobs\/sha256:[0-9a-f]{64}$/.test(e.path))
    .map((e) => ({ digest: e.path.slice(e.path.lastIndexOf("/") + 1), status: e.status, cache: e.cache }));
}

function ok(result: { code: number; stdout: string; stderr: string }, what: string): string {
  if (result.code !== 0) throw new Error(`${what} failed (exit ${result.code}):\n${result.stderr.slice(-4000)}\n${result.stdout.slice(-2000)}`);
  return result.stdout;
}

/** Each client's pull of library/nginx:latest through its own node, resolving to the digests the client itself recorded. */
const clients = {
  /** Docker through its mirror (node 1): the index digest in RepoDigests, and the host's config as the image id. */
  docker: async () => {
    ok(await dockerd!.docker(["pull", "nginx"]), "docker pull nginx");
    const [image] = JSON.parse(await dockerd!.dockerOk(["image", "inspect", "nginx"]));
    return { digest: (image.RepoDigests as string[]).find((d) => d.startsWith("nginx@"))?.slice("nginx@".length), id: image.Id as string };
  },
  /** ctr through hosts.toml (node 2): the index digest `ctr images ls` lists. */
  containerd: async () => {
    const ref = "docker.io/library/nginx:latest";
    ok(await containerd!.ctr(["images", "pull", "--hosts-dir", containerd!.hostsDir, ref], 240_000), `ctr images pull ${ref}`);
    const lines = (await containerd!.ctrOk(["images", "ls"])).split("\n").map((line) => line.split(/\s+/));
    return { digest: lines.find((cols) => cols[0] === ref)?.[2] };
  },
  /** skopeo by host (node 3): the sha256 of every file it wrote, the host's manifest and each blob. */
  skopeo: async (node: Docxy = nodes[2]!) => ({ files: await skopeoCopyOk(hostOf(node), "library/nginx:latest") }),
};

describe.skipIf(!anyClient)("a docxy fleet pulled by docker, containerd and skopeo, each through its own node", () => {
  test("all three pull a cold multi-arch image at once: the right digests for each, one CDN GET per blob for the whole fleet", async () => {
    const { nginx } = upstream.images;
    const host = hostManifest(nginx); // what each client picks from the index on this machine
    const blobs = [host.config, ...host.layers].map((b) => b.digest);
    expect(blobs.map(cdnGets)).toEqual(blobs.map(() => 0)); // cold: nobody pulled it before

    // At the same time: whichever node asks first holds the fill's lease, the others follow it.
    const [docker, ctr, skopeo] = await Promise.all([
      skipped.docker ? undefined : clients.docker(),
      skipped.containerd ? undefined : clients.containerd(),
      skipped.skopeo ? undefined : clients.skopeo(),
    ]);
    if (docker) expect(docker).toEqual({ digest: nginx.digest, id: host.config.digest });
    if (ctr) expect(ctr).toEqual({ digest: nginx.digest });
    if (skopeo) {
      expect(skopeo.files["manifest.json"]).toBe(host.digest);
      for (const digest of blobs) expect(skopeo.files[digest.slice(7)]).toBe(digest);
    }

    // Each client really pulled through its own node: that node answered a GET for every blob.
    const served = (["docker", "containerd", "skopeo"] as const).flatMap((client, i) => (skipped[client] ? [] : [nodes[i]!]));
    for (const node of served) {
      const got = new Set(blobGets(node).filter((g) => g.status === 200).map((g) => g.digest));
      expect({ node: node.url, blobs: blobs.filter((d) => got.has(d)) }).toEqual({ node: node.url, blobs });
    }
    // Once per blob for the fleet, config included; and the one node that downloaded it said MISS, the others followed it.
    expect(blobs.map(cdnGets)).toEqual(blobs.map(() => 1));
    const misses = nodes.flatMap(blobGets).filter((g) => g.cache === "MISS").map((g) => g.digest);
    expect(misses.sort()).toEqual([...blobs].sort());
    // The CDN served nothing else (no other platform's blobs) and refused nobody: no client went around docxy.
    expect(upstream.cdnLog.filter((r) => r.method === "GET").length).toBe(blobs.length);
    expect(upstream.cdnLog.filter((r) => r.status === 403)).toEqual([]);
    expect(upstream.tokenLog.filter((r) => r.status === 403)).toEqual([]);
  }, 300_000);

  // The node that downloaded a blob committed it to the bucket (its followers kept no copy), so a
  // node that never served the image finds every blob there: it looks in the bucket before the
  // lease or the upstream, and adopts what it finds, whenever it is asked (no 60 s window, as
  // when the nodes each stored their own copy and only the owner could serve it).
  test.skipIf(skipped.skopeo !== undefined)("a node that served none of it: skopeo pulls the image through it with no new CDN GET, every blob from the bucket", async () => {
    const { nginx } = upstream.images;
    const host = hostManifest(nginx);
    const blobs = [host.config, ...host.layers].map((b) => b.digest);
    const fresh = nodes[3]!;
    expect(blobGets(fresh)).toEqual([]); // it really served nothing before
    // A client can get its last byte while the owner completes the upload: wait for the objects.
    await waitFor(async () => (await Promise.all(blobs.map(inBucket))).every(Boolean), "every blob committed to the bucket", 30_000);
    const cdnBefore = upstream.cdnLog.length;

    const { files } = await clients.skopeo(fresh);
    expect(files["manifest.json"]).toBe(host.digest);
    for (const digest of blobs) expect(files[digest.slice(7)]).toBe(digest);
    expect(upstream.cdnLog.slice(cdnBefore)).toEqual([]);
    expect(blobs.map(cdnGets)).toEqual(blobs.map(() => 1));
    // Read from the one committed object in the bucket, not a fill of its own nor the owner's stream.
    const answered = blobGets(fresh).map((g) => ({ digest: g.digest, status: g.status, cache: g.cache }));
    expect(answered.sort((a, b) => a.digest.localeCompare(b.digest))).toEqual([...blobs].sort().map((digest) => ({ digest, status: 200, cache: "HIT" })));
  }, 120_000);
});
