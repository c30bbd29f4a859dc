/**
 * 7. A fleet (issue 16): N (32) clients pull the same cold blob at once,
 * spread round-robin over three docxy nodes that share one redis-server
 * (fill leases: one node fetches, the others stream the fill from it),
 * against the same N clients on one node alone (docxy's default, no Redis).
 * Wall time until the last client has every byte, the CDN GETs of the blob
 * in each run (the fleet must fetch it once, as one node does), and the peak
 * RSS (VmHWM, reset per run) of each fleet node against the single node's.
 * On loopback the CDN outruns the relays and the three nodes share two CPUs,
 * so 7 measures fan-out CPU as much as coordination; 7b repeats the time
 * and fetch rows against the WAN-rate upstream (as 3b does), where the
 * upstream is the bottleneck.
 *
 * Every fleet run gets a new, empty Redis and new nodes on empty caches, so
 * no lease or index entry of an earlier run (pointing at a node that is gone)
 * is seen. These nodes keep their blobs on their own disks; 7c measures hits
 * from the shared bucket (`[cache] storage = "s3"`).
 */
import { $, S3Client } from "bun";
import { writeFileSync } from "node:fs";
import { FLEET_SECRET } from "../../tests/support/fleet";
import { freePort } from "../../tests/support/ports";
import { startRedis } from "../../tests/support/redis";
import { startSwift } from "../../tests/support/swift";
import { curlArgs, download, parseCurl } from "../lib/curl";
import { memoryOf, startBenchDocxy, until, type BenchDocxy } from "../lib/docxy";
import { MB, settle, type Context, type Scenario } from "../lib/context";
import type { BigBlob, World } from "../lib/setup";
import { alternate, type Measure, type Row } from "../lib/stats";
import type { Upstream } from "../../tests/support/upstream";
import { sizeLabel } from "./cold-blob";

const NODES = 3;

/** A fleet node: it must know its port beforehand to advertise it (as tests/support/fleet.ts's startNode). */
async function startFleetNode(upstream: Upstream, redisUrl: string, registryUrl?: string): Promise<BenchDocxy> {
  const port = await freePort();
  const config = `[fleet]\nredis_url = "${redisUrl}"\nadvertise_url = "http://127.0.0.1:${port}"\nsecret = "${FLEET_SECRET}"\n`;
  return startBenchDocxy(upstream, { config, args: ["--http-port", String(port)], registryUrl });
}

interface Spread {
  seconds: number;
  /** X-Cache of each client's response, per node */
  caches: string[][];
  /** the slowest client's time to last byte, per node */
  slowest: number[];
  /** VmHWM of each node during the pulls, bytes */
  peaks: number[];
}

/**
 * `n` curls at once, client i on node i mod nodes.length with that node's token;
 * resolves with the wall time once all have every byte, and each node's peak RSS.
 */
async function pullSpread(nodes: BenchDocxy[], repository: string, digest: string, size: number, n: number): Promise<Spread> {
  const tokens = await Promise.all(nodes.map((d) => d.token(repository)));
  const args = nodes.map((d, i) => curlArgs(`${d.url}/v2/${repository}/blobs/${digest}`, { authorization: tokens[i] }));
  await settle();
  // Reset each node's peak (VmHWM) so it covers these pulls only (proc(5), clear_refs "5").
  for (const d of nodes) writeFileSync(`/proc/${d.pid}/clear_refs`, "5");
  const start = performance.now();
  const outs = await Promise.all(Array.from({ length: n }, (_, i) => $`${args[i % nodes.length]!}`.quiet().nothrow().text()));
  const seconds = (performance.now() - start) / 1000;
  const peaks = await Promise.all(nodes.map(async (d) => (await memoryOf(d.pid)).hwm));
  const results = outs.map(parseCurl);
  const bad = results.filter((r) => r.status !== 200 || r.bytes !== size);
  if (bad.length) throw new Error(`${bad.length} of ${n} pulls failed: ${bad.map((r) => `${r.status}/${r.bytes}`).join(", ")}`);
  const of = (k: number) => results.filter((_, i) => i % nodes.length === k);
  const caches = nodes.map((_, k) => of(k).map((r) => r.headers["x-cache"] ?? "-"));
  const slowest = nodes.map((_, k) => Math.max(...of(k).map((r) => r.seconds)));
  return { seconds, caches, slowest, peaks };
}

const tally = (caches: string[]) =>
  Object.entries(Object.groupBy(caches, (c) => c))
    .map(([k, v]) => `${k}×${v!.length}`)
    .join(" ");

interface Variant {
  blob: BigBlob;
  /** GETs of a digest its CDN has answered so far */
  gets(digest: string): number;
  /** the registry the nodes use instead of the upstream's own (same token service) */
  registryUrl?: string;
  label: string;
}

interface Comparison {
  fleetTime: Measure;
  singleTime: Measure;
  fleetGets: Measure;
  singleGets: Measure;
  /** peak RSS of every fleet node in every run */
  nodePeak: Measure;
  /** the highest of the nodes' peaks in each run (the fill's owner) */
  busiestPeak: Measure;
  singlePeak: Measure;
}

/** `n` cold pulls over a new fleet on a new Redis, alternating with `n` on one new node, `reps` times each. */
async function compare({ upstream }: World, variant: Variant, n: number, reps: number, log: (m: string) => void): Promise<Comparison> {
  const { blob, gets, registryUrl, label } = variant;
  const c: Comparison = {
    fleetTime: { name: `${n} pulls over ${NODES} nodes`, unit: "s", samples: [] },
    singleTime: { name: `${n} pulls on 1 node`, unit: "s", samples: [] },
    fleetGets: { name: `CDN GETs per blob, ${NODES} nodes`, unit: "", samples: [] },
    singleGets: { name: "CDN GETs per blob, 1 node", unit: "", samples: [] },
    nodePeak: { name: "peak RSS of each fleet node", unit: "MB", samples: [] },
    busiestPeak: { name: "peak RSS of the busiest fleet node", unit: "MB", samples: [] },
    singlePeak: { name: "single node peak RSS", unit: "MB", samples: [] },
  };
  const runFleet = async () => {
    const redis = await startRedis();
    const nodes: BenchDocxy[] = [];
    try {
      nodes.push(...(await Promise.all(Array.from({ length: NODES }, () => startFleetNode(upstream, redis.url, registryUrl)))));
      const before = gets(blob.digest);
      const r = await pullSpread(nodes, blob.repository, blob.digest, blob.size, n);
      const got = gets(blob.digest) - before;
      c.fleetTime.samples.push(r.seconds);
      c.fleetGets.samples.push(got);
      c.nodePeak.samples.push(...r.peaks.map((p) => p / MB));
      c.busiestPeak.samples.push(Math.max(...r.peaks) / MB);
      const perNode = r.caches.map((x, k) => `node ${k + 1}: ${tally(x)}, last byte ${r.slowest[k]!.toFixed(2)} s, peak ${(r.peaks[k]! / MB).toFixed(0)} MB`);
      log(`fleet ${n} cold pulls over ${NODES} nodes${label}: ${r.seconds.toFixed(2)} s, ${got} CDN GET(s); ${perNode.join("; ")}`);
    } finally {
      await Promise.all(nodes.map((d) => d.stop()));
      await redis.stop();
    }
  };
  const runSingle = async () => {
    const d = await startBenchDocxy(upstream, { registryUrl });
    try {
      const before = gets(blob.digest);
      const r = await pullSpread([d], blob.repository, blob.digest, blob.size, n);
      const got = gets(blob.digest) - before;
      c.singleTime.samples.push(r.seconds);
      c.singleGets.samples.push(got);
      c.singlePeak.samples.push(r.peaks[0]! / MB);
      log(`one node ${n} cold pulls${label}: ${r.seconds.toFixed(2)} s, ${got} CDN GET(s); ${tally(r.caches[0]!)}, peak ${(r.peaks[0]! / MB).toFixed(0)} MB`);
    } finally {
      await d.stop();
    }
  };
  await alternate(reps, [runFleet, runSingle]);
  return c;
}

// Not the median: every run must have fetched the blob exactly once.
const ONCE = { text: "1 upstream fetch in every run", on: "value", every: true, min: 1, max: 1 } as const;

const timeAndFetches = (scenario: string, c: Comparison): Row[] => [
  { scenario, a: c.fleetTime, b: c.singleTime },
  { scenario, a: c.fleetGets, target: ONCE },
  { scenario, a: c.singleGets, target: ONCE },
];

const BUCKET = "docxy-bench";

/**
 * 7c. The big blob as a hit from the bucket (`[cache] storage = "s3"` on a Swift of its own,
 * started here) vs a hit from a node's own disk (the default), and vs the object streamed straight
 * from Swift by Bun's S3 client in the bench process (what the store gives one reader), in turn;
 * and the requests Swift's proxy answered during each hit from the bucket (its access log, as a
 * client sent them).
 */
async function bucketHits({ world, settings, log }: Context): Promise<Row[]> {
  const { big, upstream } = world;
  const path = `/v2/${big.repository}/blobs/${big.digest}`;
  const fromBucket: Measure = { name: "docxy hit from the bucket", unit: "MB/s", samples: [] };
  const fromDisk: Measure = { name: "docxy hit from its disk", unit: "MB/s", samples: [] };
  const requests: Measure = { name: "object-store requests per hit", unit: "", samples: [] };
  const direct: Measure = { name: "object GET, Bun's S3 client", unit: "MB/s", samples: [] };
  const swift = await startSwift();
  const nodes: BenchDocxy[] = [];
  try {
    await swift.createBucket(BUCKET);
    const config = `[cache]\nstorage = "s3"\n[cache.s3]\nendpoint = "${swift.endpoint}"\nbucket = "${BUCKET}"\nregion = "${swift.region}"\n`;
    const env = { AWS_ACCESS_KEY_ID: swift.accessKeyId, AWS_SECRET_ACCESS_KEY: swift.secretAccessKey };
    const [s3, disk] = await Promise.all([startBenchDocxy(upstream, { config, env }), startBenchDocxy(upstream)]);
    nodes.push(s3!, disk!);
    const [s3Auth, diskAuth] = await Promise.all([s3!.token(big.repository), disk!.token(big.repository)]);
    const bucket = new S3Client({ endpoint: swift.endpoint, bucket: BUCKET, region: swift.region, accessKeyId: swift.accessKeyId, secretAccessKey: swift.secretAccessKey });
    const key = `blobs/sha256/${big.digest.slice("sha256:".length)}`;
    await download(`${s3!.url}${path}`, big.size, { authorization: s3Auth, expectCache: "MISS" });
    await download(`${disk!.url}${path}`, big.size, { authorization: diskAuth, expectCache: "MISS" });
    const inBucket = async () => {
      await Bun.sleep(200); // a HEAD every 200 ms, not every 20 (until's pace)
      return bucket.exists(key);
    };
    await until(inBucket, "the blob to be committed to the bucket", 300_000);
    await until(() => disk!.isCached(big.digest), "the blob to be committed to disk", 300_000);

    const hit = async (node: BenchDocxy, authorization: string) => {
      await settle();
      const before = world.cdnGets(big.digest);
      const r = await download(`${node.url}${path}`, big.size, { authorization, expectCache: "HIT" });
      if (world.cdnGets(big.digest) !== before) throw new Error("a hit fetched from the CDN");
      return r;
    };
    await alternate(settings.reps, [
      async () => {
        await swift.requests(); // every request answered so far is logged: only the hit's remain after the clear
        swift.clearRequests();
        const r = await hit(s3!, s3Auth);
        const seen = await swift.requests();
        fromBucket.samples.push(r.mbps);
        requests.samples.push(seen.length);
        log(`docxy hit from the bucket: ${r.mbps.toFixed(0)} MB/s, ${seen.length} object-store request(s): ${tally(seen.map((q) => `${q.method} ${q.status}`))}`);
      },
      async () => {
        // What the store gives one reader: the object itself, streamed by Bun's S3 client (as docxy reads it) and dropped.
        await settle();
        const start = performance.now();
        let bytes = 0;
        for await (const chunk of bucket.file(key).stream()) bytes += chunk.length;
        const mbps = bytes / ((performance.now() - start) / 1000) / MB;
        if (bytes !== big.size) throw new Error(`GET s3://${BUCKET}/${key}: ${bytes} of ${big.size} bytes`);
        direct.samples.push(mbps);
        log(`object GET from the bucket (Bun's S3 client): ${mbps.toFixed(0)} MB/s`);
      },
      async () => {
        const r = await hit(disk!, diskAuth);
        fromDisk.samples.push(r.mbps);
        log(`docxy hit from its disk: ${r.mbps.toFixed(0)} MB/s`);
      },
    ]);
  } finally {
    await Promise.all(nodes.map((d) => d.stop()));
    await swift.stop();
  }
  const scenario = `7c. hit of the ${sizeLabel(big.size)} blob from the bucket (Swift s3api on loopback)`;
  return [
    { scenario, a: fromBucket, b: fromDisk },
    { scenario, a: fromBucket, b: direct },
    { scenario, a: requests },
  ];
}

export const fleet: Scenario = {
  id: "fleet",
  title: `cold pulls spread over a ${NODES}-node fleet (one Redis) vs one node; hits from a bucket vs from disk`,
  async run(ctx: Context) {
    const { world, settings, log } = ctx;
    const n = settings.concurrent;
    const { big, wan } = world;
    const local = await compare(world, { blob: big, gets: world.cdnGets, label: "" }, n, settings.reps, log);
    const slow = await compare(world, { blob: wan.blob, gets: wan.gets, registryUrl: wan.registryUrl, label: " over the WAN-rate upstream" }, n, settings.reps, log);
    const memory = `7. memory per node during the ${n} cold pulls (loopback CDN)`;
    return [
      ...timeAndFetches(`7. ${n} cold pulls, ${sizeLabel(big.size)}, loopback CDN, spread over ${NODES} fleet nodes (one Redis)`, local),
      { scenario: memory, a: local.nodePeak, b: local.singlePeak },
      { scenario: memory, a: local.busiestPeak, b: local.singlePeak },
      ...timeAndFetches(`7b. ${n} cold pulls, ${sizeLabel(wan.blob.size)}, CDN at ${(wan.rate / 1e6).toFixed(0)} MB/s per download, over ${NODES} fleet nodes`, slow),
      ...(await bucketHits(ctx)),
    ];
  },
};
