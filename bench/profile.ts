/**
 * Profiles dist/docxy under one benchmark workload, for finding why a target
 * is missed. Not part of `bun run bench`.
 *
 *   bun bench/profile.ts cold|hit|concurrent|slow|manifest [--size-mib 256] [--strace] [--perf]
 *
 * The CPU profile comes from Bun's own `--cpu-prof` (through BUN_OPTIONS, which
 * the compiled binary honours) with its markdown summary; `--strace` adds a
 * syscall count (strace -c -f) of docxy during the workload; `--perf` a
 * `perf record -g` of docxy during the workload (native frames: copies, hashing).
 */
import { $ } from "bun";
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { download } from "./lib/curl";
import { memoryOf, startBenchDocxy, until } from "./lib/docxy";
import { startWorld } from "./lib/setup";
import { loadgen } from "./loadgen";
import { pullAll } from "./scenarios/concurrent-cold";

const { values, positionals } = parseArgs({
  args: Bun.argv.slice(2),
  allowPositionals: true,
  options: { "size-mib": { type: "string", default: "256" }, strace: { type: "boolean", default: false }, perf: { type: "boolean", default: false } },
});
const workload = positionals[0] ?? "cold";
const outDir = mkdtempSync(join(tmpdir(), "docxy-profile-"));
const world = await startWorld(Number(values["size-mib"]) * 2 ** 20, 64 * 2 ** 20, 25e6);
const { big, upstream } = world;
const path = `/v2/${big.repository}/blobs/${big.digest}`;
const d = await startBenchDocxy(upstream, { env: { BUN_OPTIONS: `--cpu-prof --cpu-prof-md --cpu-prof-dir=${outDir}` } });
try {
  const authorization = await d.token(big.repository);
  if (workload === "hit" || workload === "slow-hit") {
    await download(`${d.url}${path}`, big.size, { authorization });
    await until(() => d.isCached(big.digest), "commit");
  }
  const tracer =
    values.strace ? Bun.spawn(["strace", "-c", "-f", "-p", String(d.pid), "-o", join(outDir, "strace.txt")], { stderr: "ignore" })
    : values.perf ? Bun.spawn(["perf", "record", "-g", "-p", String(d.pid), "-o", join(outDir, "perf.data")], { stderr: "ignore", stdout: "ignore" })
    : undefined;
  if (tracer) await Bun.sleep(500);
  const start = performance.now();
  switch (workload) {
    case "cold":
    case "hit": {
      const r = await download(`${d.url}${path}`, big.size, { authorization });
      console.log(`${workload}: ${r.mbps.toFixed(0)} MB/s, X-Cache ${r.headers["x-cache"]}`);
      break;
    }
    case "concurrent": {
      const r = await pullAll(`${d.url}${path}`, 32, big.size, authorization);
      console.log(`32 cold pulls: ${r.seconds.toFixed(2)} s`);
      break;
    }
    case "slow":
    case "slow-hit": {
      const args = ["curl", "-s", "-o", "/dev/null", "--limit-rate", "1M", "--max-time", "8", "-H", `Authorization: ${authorization}`, `${d.url}${path}`];
      await Promise.all(Array.from({ length: 64 }, () => $`${args}`.quiet().nothrow()));
      console.log(`64 slow clients: peak ${((await memoryOf(d.pid)).hwm / 1e6).toFixed(0)} MB`);
      console.log(await Bun.file(`/proc/${d.pid}/status`).text().then((s) => s.split("\n").filter((l) => /^(Vm|Rss)/.test(l)).join("\n")));
      break;
    }
    case "manifest": {
      const headers = { Accept: "application/vnd.docker.distribution.manifest.v2+json", Authorization: await d.token("library/alpine") };
      const url = `${d.url}/v2/library/alpine/manifests/3.20`;
      await fetch(url, { method: "HEAD", headers });
      console.log(await loadgen({ url, method: "HEAD", headers, connections: 32, seconds: 5 }));
      break;
    }
    default:
      throw new Error(`unknown workload ${workload}`);
  }
  console.log(`workload took ${((performance.now() - start) / 1000).toFixed(2)} s`);
  if (tracer) {
    tracer.kill("SIGINT");
    await tracer.exited;
  }
} finally {
  await d.stop();
  await world.stop();
}
await Bun.sleep(200);
console.log(`profile files in ${outDir}: ${readdirSync(outDir).join(", ")}`);
if (values.strace) console.log(await Bun.file(join(outDir, "strace.txt")).text());
if (values.perf) console.log(await $`perf report -i ${join(outDir, "perf.data")} --no-children --sort symbol --stdio 2>/dev/null | grep -v '^$' | head -60`.nothrow().text());
