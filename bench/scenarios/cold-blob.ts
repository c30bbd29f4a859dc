/**
 * 1. A cold blob (the big one) through docxy vs the client fetching it itself
 * (direct: registry 307 → CDN), vs distribution's proxy mode on a cold cache,
 * and vs nginx proxy_pass as a pure streaming forwarder. Every docxy and
 * distribution run is a new process on an empty cache.
 */
import { download } from "../lib/curl";
import { startDistributionProxy } from "../lib/distribution";
import { startBenchDocxy } from "../lib/docxy";
import { settle, type Context, type Scenario } from "../lib/context";
import { alternate, type Measure } from "../lib/stats";

export const coldBlob: Scenario = {
  id: "cold",
  title: "cold blob through the proxy",
  async run({ world, settings, log }: Context) {
    const { big, upstream, nginx } = world;
    const path = `/v2/${big.repository}/blobs/${big.digest}`;
    const mb = (name: string): Measure => ({ name, unit: "MB/s", samples: [] });
    const docxy = mb("docxy cold");
    const direct = mb("direct");
    const dist = mb("distribution proxy cold");
    const forward = mb("nginx proxy_pass");

    await alternate(settings.reps, [
      async () => {
        const d = await startBenchDocxy(upstream);
        try {
          const before = world.cdnGets(big.digest);
          const authorization = await d.token(big.repository);
          await settle();
          const r = await download(`${d.url}${path}`, big.size, { authorization, expectCache: "MISS" });
          const fetches = world.cdnGets(big.digest) - before;
          if (fetches !== 1) throw new Error(`docxy cold pull made ${fetches} CDN fetches`);
          docxy.samples.push(r.mbps);
          log(`docxy cold ${r.mbps.toFixed(0)} MB/s`);
        } finally {
          await d.stop();
        }
      },
      async () => {
        const authorization = await world.upstreamToken(big.repository);
        await settle();
        const r = await download(`${upstream.registryUrl}${path}`, big.size, { authorization, follow: true });
        direct.samples.push(r.mbps);
        log(`direct ${r.mbps.toFixed(0)} MB/s`);
      },
      async () => {
        const p = await startDistributionProxy(upstream.registryUrl);
        try {
          await settle();
          const r = await download(`${p.url}${path}`, big.size);
          dist.samples.push(r.mbps);
          log(`distribution cold ${r.mbps.toFixed(0)} MB/s`);
        } finally {
          await p.stop();
        }
      },
      async () => {
        await settle();
        const r = await download(`${nginx.forwardUrl}${big.cdnPath}`, big.size);
        forward.samples.push(r.mbps);
        log(`nginx proxy_pass ${r.mbps.toFixed(0)} MB/s`);
      },
    ]);

    const scenario = `1. cold ${sizeLabel(big.size)} blob`;
    return [
      // issue 17: at least distribution's pace (the aim is 1.3×), and well above a relay that neither hashes nor stores
      { scenario, a: docxy, b: dist, target: { text: "≥ 1.0× distribution (aim 1.3×)", on: "ratio", min: 1.0 } },
      { scenario, a: docxy, b: direct, note: "reported only: docxy also hashes and writes to disk" },
      { scenario, a: docxy, b: forward, target: { text: "≥ 1.5× nginx proxy_pass", on: "ratio", min: 1.5 } },
    ];
  },
};

export const sizeLabel = (bytes: number) => (bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(0)} GiB` : `${(bytes / 2 ** 20).toFixed(0)} MiB`);
