/**
 * 4. Manifest HEAD by tag, cached, under a keep-alive load (32 connections):
 * requests/s and p99 through docxy (tag in its cache, checked `X-Cache: HIT`)
 * vs distribution's proxy (which revalidates every tag upstream, by design).
 * HEAD runs on bench/loadgen.ts, because wrk cannot do HEAD; the same GET by
 * tag is also run with wrk, as a cross-check with a standard tool.
 */
import { $ } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startDistributionProxy, type DistributionProxy } from "../lib/distribution";
import { startBenchDocxy, type BenchDocxy } from "../lib/docxy";
import type { Context, Scenario } from "../lib/context";
import { alternate, type Measure, type Row } from "../lib/stats";
import { loadgen } from "../loadgen";

const REPOSITORY = "library/alpine";
const TAG = "3.20"; // not "latest", which has a shorter tag TTL in some configs
const ACCEPT = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";
const CONNECTIONS = 32;

interface Wrk {
  rps: number;
  p99ms: number;
  errors: number;
}

const toMs = (value: string, unit: string) => Number(value) * ({ us: 0.001, ms: 1, s: 1000, m: 60000 }[unit] ?? NaN);

async function wrk(url: string, script: string, seconds: number): Promise<Wrk> {
  const out = await $`wrk -t1 -c${CONNECTIONS} -d${seconds}s --latency -s ${script} ${url}`.quiet().nothrow().text();
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const p99 = /\s99%\s+([\d.]+)(us|ms|s|m)\b/.exec(out);
  if (!rps || !p99) throw new Error(`unexpected wrk output:\n${out}`);
  const errors = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0) + Number(/Socket errors:.*timeout (\d+)/.exec(out)?.[1] ?? 0);
  return { rps: Number(rps[1]), p99ms: toMs(p99[1]!, p99[2]!), errors };
}

export const manifestHead: Scenario = {
  id: "manifest",
  title: "manifest HEAD by tag, cached, keep-alive load",
  async run({ world, settings, log }: Context) {
    const { upstream } = world;
    const m = (name: string, unit: string): Measure => ({ name, unit, samples: [] });
    const headRps = { docxy: m("docxy", "req/s"), dist: m("distribution proxy", "req/s") };
    const headP99 = { docxy: m("docxy p99", "ms"), dist: m("distribution proxy p99", "ms") };
    const getRps = { docxy: m("docxy", "req/s"), dist: m("distribution proxy", "req/s") };
    const getP99 = { docxy: m("docxy p99", "ms"), dist: m("distribution proxy p99", "ms") };

    const dir = mkdtempSync(join(tmpdir(), "docxy-bench-wrk-"));
    let d: BenchDocxy | undefined;
    let p: DistributionProxy | undefined;
    try {
      d = await startBenchDocxy(upstream);
      p = await startDistributionProxy(upstream.registryUrl);
      const authorization = await d.token(REPOSITORY);
      const headers = { Accept: ACCEPT, Authorization: authorization };
      const targets = { docxy: `${d.url}/v2/${REPOSITORY}/manifests/${TAG}`, dist: `${p.url}/v2/${REPOSITORY}/manifests/${TAG}` };
      // Warm both: the first HEAD fills docxy's tag cache; the next must be a hit.
      for (const url of Object.values(targets)) await fetch(url, { method: "HEAD", headers });
      const check = await fetch(targets.docxy, { method: "HEAD", headers });
      if (check.status !== 200 || check.headers.get("x-cache") !== "HIT") throw new Error(`docxy manifest HEAD: ${check.status} X-Cache ${check.headers.get("x-cache")}`);
      const script = join(dir, "get.lua");
      await Bun.write(script, Object.entries(headers).map(([k, v]) => `wrk.headers["${k}"] = "${v}"`).join("\n"));

      const side = (key: "docxy" | "dist") => [
        async () => {
          const r = await loadgen({ url: targets[key], method: "HEAD", headers, connections: CONNECTIONS, seconds: settings.loadSeconds, warmupSeconds: 1 });
          if (r.errors > 0) throw new Error(`${key} HEAD: ${JSON.stringify(r.statuses)}`);
          headRps[key].samples.push(r.rps);
          headP99[key].samples.push(r.p99ms);
          log(`${key} HEAD ${r.rps.toFixed(0)} req/s p99 ${r.p99ms.toFixed(1)} ms`);
        },
        async () => {
          const r = await wrk(targets[key], script, settings.loadSeconds);
          if (r.errors > 0) throw new Error(`${key} GET (wrk): ${r.errors} errors`);
          getRps[key].samples.push(r.rps);
          getP99[key].samples.push(r.p99ms);
          log(`${key} GET (wrk) ${r.rps.toFixed(0)} req/s p99 ${r.p99ms.toFixed(1)} ms`);
        },
      ];
      const [dHead, dGet] = side("docxy");
      const [pHead, pGet] = side("dist");
      await alternate(settings.reps, [dHead!, pHead!, dGet!, pGet!]);
      // docxy trusts a tag for tag_ttl (60 s by default), then revalidates it with one upstream HEAD;
      // that answer carries no X-Cache (seen with docxy 0.1.0), the ones after it are HITs again.
      const after = await fetch(targets.docxy, { method: "HEAD", headers });
      log(`docxy after the load: HTTP ${after.status}, X-Cache ${after.headers.get("x-cache")}`);
    } finally {
      await d?.stop();
      await p?.stop();
      rmSync(dir, { recursive: true, force: true });
    }

    const head = "4. manifest HEAD by tag, cached";
    const get = "4b. manifest GET by tag, cached (wrk)";
    const rows: Row[] = [
      { scenario: head, a: headRps.docxy, b: headRps.dist, target: { text: "≥ 2× distribution", on: "ratio", min: 2 } },
      { scenario: head, a: headP99.docxy, b: headP99.dist, note: "p99 latency" },
      { scenario: get, a: getRps.docxy, b: getRps.dist },
      { scenario: get, a: getP99.docxy, b: getP99.dist, note: "p99 latency" },
    ];
    return rows;
  },
};
