/**
 * 6. A whole-image pull by skopeo (`copy docker://… dir:…`): the tests'
 * library/nginx:latest, and bench/big:v1 (the big layer), through docxy cold
 * (a fresh docxy) and warm (the same docxy again, checked: no CDN fetch) vs
 * skopeo pulling from the upstream itself (direct).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { skopeoOk } from "../../tests/support/skopeo";
import { startBenchDocxy, until } from "../lib/docxy";
import { settle, type Context, type Scenario } from "../lib/context";
import { alternate, type Measure, type Row } from "../lib/stats";
import { sizeLabel } from "./cold-blob";

async function pull(host: string, reference: string): Promise<number> {
  const dest = mkdtempSync(join(tmpdir(), "docxy-bench-skopeo-"));
  try {
    await settle();
    const start = performance.now();
    await skopeoOk("copy", "--src-tls-verify=false", `docker://${host}/${reference}`, `dir:${dest}`);
    return (performance.now() - start) / 1000;
  } finally {
    rmSync(dest, { recursive: true, force: true });
  }
}

export const imagePull: Scenario = {
  id: "skopeo",
  title: "whole-image pull by skopeo",
  async run({ world, settings, log }: Context) {
    const { upstream, big } = world;
    const upstreamHost = new URL(upstream.registryUrl).host;
    const nginx = upstream.images.nginx.manifests.find((m) => m.platform.architecture === "amd64")!;
    const images = [
      { label: "library/nginx:latest", reference: "library/nginx:latest", blobs: [nginx.config, ...nginx.layers].map((b) => b.digest) },
      { label: `bench/big:v1 (${sizeLabel(big.size)} layer)`, reference: `${big.repository}:${big.tag}`, blobs: [big.digest] },
    ];
    const rows: Row[] = [];
    for (const image of images) {
      const m = (name: string): Measure => ({ name, unit: "s", samples: [] });
      const cold = m("docxy cold");
      const warm = m("docxy warm");
      const direct = m("direct");
      await alternate(settings.reps, [
        async () => {
          direct.samples.push(await pull(upstreamHost, image.reference));
          log(`${image.label} direct ${direct.samples.at(-1)!.toFixed(2)} s`);
        },
        async () => {
          const d = await startBenchDocxy(upstream);
          try {
            const host = new URL(d.url).host;
            cold.samples.push(await pull(host, image.reference));
            await until(() => image.blobs.every((b) => d.isCached(b)), `${image.label} to be cached`);
            const before = upstream.cdnLog.length;
            warm.samples.push(await pull(host, image.reference));
            const fetched = upstream.cdnLog.slice(before).filter((r) => r.method === "GET").length;
            if (fetched !== 0) throw new Error(`warm pull of ${image.label} fetched ${fetched} blobs from the CDN`);
            log(`${image.label} docxy cold ${cold.samples.at(-1)!.toFixed(2)} s, warm ${warm.samples.at(-1)!.toFixed(2)} s`);
          } finally {
            await d.stop();
          }
        },
      ]);
      const scenario = `6. skopeo pull ${image.label}`;
      rows.push({ scenario, a: cold, b: direct, note: "time: lower is better" }, { scenario, a: warm, b: direct, note: "time: lower is better" });
    }
    return rows;
  },
};
