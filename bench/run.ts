/**
 * `bun run bench`: docxy against the physical limit and the usual
 * alternatives, side by side, on loopback (issue 8). Starts its own real
 * upstream (distribution 2.8 + token server + CDN, as in the tests) and the
 * baselines (nginx sendfile, nginx proxy_pass, distribution's proxy mode),
 * runs every scenario a few times alternating A/B, prints a table (median,
 * ratio, min–max) and writes it into BENCHMARKS.md with the machine.
 *
 *   bun run bench                 full run (1 GiB blob, 3 repetitions), updates BENCHMARKS.md
 *   bun run bench --quick         256 MiB, 1 repetition, short loads; prints only (add --write to record)
 *   bun run bench --only cold,warm   some scenarios: cold warm concurrent manifest slow skopeo fleet soak
 *   bun run bench --reps 5 --size-mib 2048
 *
 * Needs root on Debian for apt-get when nginx, wrk, curl, skopeo,
 * docker-registry or redis-server are missing; uses dist/docxy (built when absent, or with --build).
 */
import { $ } from "bun";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { DOCXY_BIN, ensureBinary } from "../tests/support/docxy-process";
import type { Context, Scenario, Settings } from "./lib/context";
import { describeMachine, ensureTools } from "./lib/machine";
import { writeReport } from "./lib/report";
import { startWorld } from "./lib/setup";
import { textTable, verdict, type Row } from "./lib/stats";
import { coldBlob } from "./scenarios/cold-blob";
import { concurrentCold } from "./scenarios/concurrent-cold";
import { fleet } from "./scenarios/fleet";
import { imagePull } from "./scenarios/image-pull";
import { manifestHead } from "./scenarios/manifest-head";
import { slowClients } from "./scenarios/slow-clients";
import { soak } from "./scenarios/soak";
import { warmBlob } from "./scenarios/warm-blob";

const SCENARIOS: Scenario[] = [coldBlob, warmBlob, concurrentCold, manifestHead, slowClients, imagePull, fleet, soak];
const ROOT = resolve(import.meta.dir, "..");

const { values: flags } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    quick: { type: "boolean", default: false },
    reps: { type: "string" },
    "size-mib": { type: "string" },
    only: { type: "string" },
    write: { type: "boolean" },
    "no-write": { type: "boolean", default: false },
    build: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (flags.help) {
  console.log(
    "usage: bun run bench [--quick] [--reps N] [--size-mib N] [--only cold,warm,concurrent,manifest,slow,skopeo,fleet,soak] [--write | --no-write] [--build]",
  );
  process.exit(0);
}

const quick = flags.quick;
const settings: Settings = {
  quick,
  reps: Number(flags.reps ?? (quick ? 1 : 3)),
  bigBytes: Number(flags["size-mib"] ?? (quick ? 256 : 1024)) * 2 ** 20,
  loadSeconds: quick ? 3 : 6,
  slowSeconds: quick ? 8 : 15,
  wanBytes: (quick ? 64 : 256) * 2 ** 20,
  wanRate: 25e6, // 200 Mbit/s per download, a good pull from Docker Hub
  concurrent: 32,
  slowClients: 64,
  soakSeconds: quick ? 120 : 600,
};
const only = flags.only?.split(",").map((s) => s.trim());
const unknown = only?.filter((id) => !SCENARIOS.some((s) => s.id === id)) ?? [];
if (unknown.length) throw new Error(`unknown scenario(s) ${unknown.join(", ")}; known: ${SCENARIOS.map((s) => s.id).join(" ")}`);
const selected = SCENARIOS.filter((s) => !only || only.includes(s.id));
// The full run (every scenario, default settings) is what BENCHMARKS.md records.
const write = flags.write ?? (!flags["no-write"] && !quick && !only && !flags.reps && !flags["size-mib"]);

process.chdir(ROOT);
const started = performance.now();
const elapsed = () => `${((performance.now() - started) / 1000).toFixed(0)} s`;
const log = (message: string) => console.log(`[${elapsed().padStart(5)}] ${message}`);

await ensureTools();
if (flags.build) await $`bun scripts/build.ts`.env({ ...process.env, PATH: `${resolve(ROOT, "node_modules/.bin")}:${process.env.PATH}` });
await ensureBinary();
const machine = await describeMachine();
log(`docxy ${machine.docxy} (${DOCXY_BIN}), Bun ${machine.bun}, ${machine.nproc} CPUs, ${machine.memory}`);
log(`setting up: upstream + ${(settings.bigBytes / 2 ** 20).toFixed(0)} MiB layer + nginx`);

const world = await startWorld(settings.bigBytes, settings.wanBytes, settings.wanRate);
const rows: Row[] = [];
const failures: string[] = [];
try {
  log(`ready: registry ${world.upstream.registryUrl}, CDN ${world.upstream.cdnUrl}, blob ${world.big.digest.slice(0, 19)}… ${world.big.size} bytes`);
  const ctx: Context = { world, settings, log: (m) => log(`  ${m}`) };
  for (const scenario of selected) {
    log(`scenario ${scenario.id}: ${scenario.title}`);
    try {
      rows.push(...(await scenario.run(ctx)));
    } catch (err) {
      const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
      failures.push(`${scenario.id}: ${message}`);
      log(`scenario ${scenario.id} FAILED: ${message}`);
    }
  }
} finally {
  await world.stop();
}

const duration = (performance.now() - started) / 1000;
console.log(`\n${textTable(rows)}\n`);
const targeted = rows.filter((r) => r.target);
const missed = targeted.filter((r) => verdict(r) === "missed");
console.log(`targets: ${targeted.length - missed.length} of ${targeted.length} met${missed.length ? `; missed: ${missed.map((r) => `${r.scenario} (${r.target!.text})`).join("; ")}` : ""}`);
if (failures.length) console.log(`failed scenarios:\n${failures.join("\n")}`);
console.log(`total ${duration.toFixed(0)} s`);

if (write) {
  await writeReport(resolve(ROOT, "BENCHMARKS.md"), { rows, machine, settings, duration, failures, argv: Bun.argv.slice(2) });
  console.log("wrote BENCHMARKS.md");
}
process.exit(failures.length ? 1 : 0);
