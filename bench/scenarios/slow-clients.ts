/**
 * 5. 64 slow clients (curl --limit-rate 1M) reading the big blob for a fixed
 * time: peak RSS of docxy (VmHWM from /proc/<pid>/status, also sampled
 * VmRSS), first on a cold blob (all 64 follow one fill that runs ahead at
 * the upstream's pace), then on the cached blob, through a new docxy process
 * on the same cache: the cold phase's leftovers (heap the collector has not
 * returned yet) would otherwise count against the hit path. distribution's
 * proxy under the same two loads is measured once for context.
 */
import { $ } from "bun";
import { writeFileSync } from "node:fs";
import { curlArgs } from "../lib/curl";
import { startDistributionProxy } from "../lib/distribution";
import { memoryOf, startBenchDocxy, until } from "../lib/docxy";
import { MB, settle, type Context, type Scenario } from "../lib/context";
import type { Measure, Row } from "../lib/stats";

interface Phase {
  peakMB: number;
  /** highest RssAnon sampled (every 100 ms): memory of its own, without mapped files */
  anonMB: number;
  /** bytes all clients received together */
  bytes: number;
}

/** Runs `n` rate-limited curls for `seconds` against `url` while sampling `pid`'s memory. */
async function slowLoad(pid: number, url: string, n: number, seconds: number, authorization?: string): Promise<Phase> {
  // Reset the peak (VmHWM) so it covers this phase only (proc(5), clear_refs "5").
  writeFileSync(`/proc/${pid}/clear_refs`, "5");
  const args = curlArgs(url, { authorization, limitRate: "1M", maxTime: seconds });
  let peak = (await memoryOf(pid)).hwm;
  let anon = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const m = await memoryOf(pid).catch(() => ({ rss: 0, hwm: 0, anon: 0 }));
      peak = Math.max(peak, m.rss, m.hwm);
      anon = Math.max(anon, m.anon);
      await Bun.sleep(100);
    }
  })();
  const outs = await Promise.all(Array.from({ length: n }, () => $`${args}`.quiet().nothrow()));
  sampling = false;
  await sampler;
  peak = Math.max(peak, (await memoryOf(pid)).hwm);
  let bytes = 0;
  for (const out of outs) {
    const m = /CURL (\d+) (\d+)/.exec(out.stdout.toString());
    // exit 28 = --max-time reached, which is the plan; anything else is a failure
    if (!m || m[1] !== "200" || (out.exitCode !== 0 && out.exitCode !== 28)) throw new Error(`slow client failed: exit ${out.exitCode} ${out.stdout.toString().slice(-200)} ${out.stderr.toString()}`);
    bytes += Number(m[2]);
  }
  return { peakMB: peak / MB, anonMB: anon / MB, bytes };
}

export const slowClients: Scenario = {
  id: "slow",
  title: "64 slow clients, peak RSS",
  async run({ world, settings, log }: Context) {
    const { big, upstream } = world;
    const n = settings.slowClients;
    const s = settings.slowSeconds;
    const path = `/v2/${big.repository}/blobs/${big.digest}`;
    const cold: Measure = { name: "docxy peak RSS", unit: "MB", samples: [] };
    const warm: Measure = { name: "docxy peak RSS", unit: "MB", samples: [] };
    const idle: Measure = { name: "docxy idle RSS", unit: "MB", samples: [] };
    const coldAnon: Measure = { name: "docxy peak RssAnon", unit: "MB", samples: [] };
    const warmAnon: Measure = { name: "docxy peak RssAnon", unit: "MB", samples: [] };
    const rate = (p: Phase) => `${(p.bytes / n / s / 2 ** 20).toFixed(2)} MiB/s per client`;

    for (let i = 0; i < settings.reps; i++) {
      const d = await startBenchDocxy(upstream);
      let cacheKept = false;
      try {
        const authorization = await d.token(big.repository);
        idle.samples.push((await memoryOf(d.pid)).rss / MB);
        await settle();
        const c = await slowLoad(d.pid, `${d.url}${path}`, n, s, authorization);
        cold.samples.push(c.peakMB);
        coldAnon.samples.push(c.anonMB);
        log(`docxy ${n} slow clients, cold: peak ${c.peakMB.toFixed(0)} MB (anon ${c.anonMB.toFixed(0)} MB), ${rate(c)}`);
        await until(() => d.isCached(big.digest), "the fill to commit", 120_000);
        await d.stop({ keepCache: true });
        cacheKept = true;
      } finally {
        if (!cacheKept) await d.stop();
      }
      const h = await startBenchDocxy(upstream, { cacheDir: d.cacheDir });
      try {
        const authorization = await h.token(big.repository);
        await settle();
        const w = await slowLoad(h.pid, `${h.url}${path}`, n, s, authorization);
        warm.samples.push(w.peakMB);
        warmAnon.samples.push(w.anonMB);
        log(`docxy ${n} slow clients, warm (new process on the cache): peak ${w.peakMB.toFixed(0)} MB (anon ${w.anonMB.toFixed(0)} MB), ${rate(w)}`);
      } finally {
        await h.stop();
      }
    }

    const rows: Row[] = [];
    const coldScenario = `5. ${n} slow clients (1 MiB/s, ${s} s), cold blob`;
    const warmScenario = `5. ${n} slow clients (1 MiB/s, ${s} s), cached blob`;
    const p = await startDistributionProxy(upstream.registryUrl);
    try {
      await settle();
      const c = await slowLoad(p.pid, `${p.url}${path}`, n, s);
      log(`distribution ${n} slow clients, cold: peak ${c.peakMB.toFixed(0)} MB (anon ${c.anonMB.toFixed(0)} MB), ${rate(c)}`);
      // Its 64 cold requests each went upstream; wait until one is served from its storage.
      for (let i = 0; ; i++) {
        const before = world.cdnGets(big.digest);
        await $`${curlArgs(`${p.url}${path}`)}`.quiet().nothrow();
        if (world.cdnGets(big.digest) === before) break;
        if (i >= 10) throw new Error("distribution never served the blob from its cache");
        await Bun.sleep(1000);
      }
      const w = await slowLoad(p.pid, `${p.url}${path}`, n, s);
      log(`distribution ${n} slow clients, warm: peak ${w.peakMB.toFixed(0)} MB (anon ${w.anonMB.toFixed(0)} MB), ${rate(w)}`);
      rows.push(
        { scenario: coldScenario, a: cold, b: { name: "distribution peak RSS", unit: "MB", samples: [c.peakMB] }, target: { text: "≤ 100 MB", on: "value", max: 100 } },
        { scenario: coldScenario, a: coldAnon, b: { name: "distribution peak RssAnon", unit: "MB", samples: [c.anonMB] } },
        { scenario: warmScenario, a: warm, b: { name: "distribution peak RSS", unit: "MB", samples: [w.peakMB] }, target: { text: "≤ 100 MB", on: "value", max: 100 } },
        { scenario: warmScenario, a: warmAnon, b: { name: "distribution peak RssAnon", unit: "MB", samples: [w.anonMB] } },
        { scenario: "5. (context)", a: idle },
      );
    } finally {
      await p.stop();
    }
    return rows;
  },
};
