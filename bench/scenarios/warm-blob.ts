/**
 * 2. The big blob from a warm cache: docxy (every run checked to be an
 * `X-Cache: HIT` with no CDN fetch) with its defaults, and with a sendfile
 * port (`[server] sendfile_enabled`: the hit is a 307 to it, and curl's time
 * covers both requests), vs nginx sendfile of the upstream's own file (the
 * physical limit) and vs distribution's proxy on a hit (checked: no CDN fetch
 * during the run).
 */
import { download } from "../lib/curl";
import { startDistributionProxy, type DistributionProxy } from "../lib/distribution";
import { startBenchDocxy, until, type BenchDocxy } from "../lib/docxy";
import { settle, type Context, type Scenario } from "../lib/context";
import { alternate, type Measure } from "../lib/stats";
import { sizeLabel } from "./cold-blob";

export const warmBlob: Scenario = {
  id: "warm",
  title: "warm (cached) blob",
  async run({ world, settings, log }: Context) {
    const { big, upstream, nginx } = world;
    const path = `/v2/${big.repository}/blobs/${big.digest}`;
    const mb = (name: string): Measure => ({ name, unit: "MB/s", samples: [] });
    const docxy = mb("docxy hit");
    const docxySendfile = mb("docxy hit, sendfile port");
    const sendfile = mb("nginx sendfile");
    const dist = mb("distribution proxy hit");

    let d: BenchDocxy | undefined;
    let s: BenchDocxy | undefined;
    let p: DistributionProxy | undefined;
    try {
      d = await startBenchDocxy(upstream);
      const authorization = await d.token(big.repository);
      const dx = d;
      await download(`${dx.url}${path}`, big.size, { authorization, expectCache: "MISS" });
      await until(() => dx.isCached(big.digest), "docxy to commit the blob");
      s = await startBenchDocxy(upstream, { env: { DOCXY_SERVER_SENDFILE_ENABLED: "true", DOCXY_SERVER_SENDFILE_PORT: "0" } });
      const sx = s;
      const sendfileAuthorization = await sx.token(big.repository);
      await download(`${sx.url}${path}`, big.size, { authorization: sendfileAuthorization, expectCache: "MISS" });
      await until(() => sx.isCached(big.digest), "docxy (sendfile port) to commit the blob");

      p = await startDistributionProxy(upstream.registryUrl);
      const px = p;
      // distribution commits after the first pull has been sent; pull until one is served without the CDN.
      await download(`${px.url}${path}`, big.size);
      for (let i = 0; ; i++) {
        const before = world.cdnGets(big.digest);
        await download(`${px.url}${path}`, big.size);
        if (world.cdnGets(big.digest) === before) break;
        if (i >= 10) throw new Error("distribution never served the blob from its cache");
        await Bun.sleep(500);
      }

      await alternate(settings.reps, [
        async () => {
          await settle();
          const before = world.cdnGets(big.digest);
          const r = await download(`${dx.url}${path}`, big.size, { authorization, expectCache: "HIT" });
          if (world.cdnGets(big.digest) !== before) throw new Error("docxy hit fetched from the CDN");
          docxy.samples.push(r.mbps);
          log(`docxy hit ${r.mbps.toFixed(0)} MB/s`);
        },
        async () => {
          await settle();
          const before = world.cdnGets(big.digest);
          const r = await download(`${sx.url}${path}`, big.size, { authorization: sendfileAuthorization, follow: true, expectCache: "HIT" });
          if (world.cdnGets(big.digest) !== before) throw new Error("docxy hit fetched from the CDN");
          if (r.headers["content-length"] !== String(big.size)) throw new Error("the sendfile port did not send the blob's length");
          docxySendfile.samples.push(r.mbps);
          log(`docxy hit, sendfile port ${r.mbps.toFixed(0)} MB/s`);
        },
        async () => {
          await settle();
          const r = await download(`${nginx.sendfileUrl}${big.cdnPath}`, big.size);
          sendfile.samples.push(r.mbps);
          log(`nginx sendfile ${r.mbps.toFixed(0)} MB/s`);
        },
        async () => {
          await settle();
          const before = world.cdnGets(big.digest);
          const r = await download(`${px.url}${path}`, big.size);
          if (world.cdnGets(big.digest) !== before) throw new Error("distribution hit fetched from the CDN");
          dist.samples.push(r.mbps);
          log(`distribution hit ${r.mbps.toFixed(0)} MB/s`);
        },
      ]);
    } finally {
      await d?.stop();
      await s?.stop();
      await p?.stop();
    }

    const scenario = `2. warm ${sizeLabel(big.size)} blob`;
    // issue 17: a hit is as fast as nginx sendfile in each run, not just in the median of them
    const asSendfile = { text: "≥ 1.0× nginx sendfile in every run", on: "ratio", every: true, min: 1.0 } as const;
    return [
      { scenario, a: docxy, b: sendfile, target: asSendfile },
      { scenario, a: docxySendfile, b: sendfile, target: asSendfile },
      // no target: distribution serves hits with sendfile too, so a multiple of it is bounded by the machine
      { scenario, a: docxy, b: dist },
    ];
  },
};
