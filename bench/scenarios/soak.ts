/**
 * 8. Soak: one docxy under a steady mix of load for `soakSeconds` (10 min,
 * 2 with --quick), sampled every second for RSS, RssAnon and open fds. The
 * rates are six times those of an hour at a busy team's mirror, so 10 min
 * stand for an hour (`HOUR_EQUIVALENT`); a quick run is a fifth of one. A
 * leak, of memory or of descriptors, grows with requests served, so a
 * compressed hour shows the growth of a real one; what it cannot show is
 * growth with wall time alone (timers, TTL'd maps), which the tag TTL (60 s)
 * still turns over several times.
 *
 * The mix, all at once:
 * - a cold pull of a new image every 4 s, from a pool of small images pushed
 *   before the soak (bench/lib/soak-images.ts), so misses keep coming;
 * - two clients each pulling an image already pulled every 0.5 s (warm pulls);
 * - every 20 s a 3 s burst of manifest HEADs by tag on 8 keep-alive
 *   connections (bench/loadgen.ts), as CI fleets polling for new tags do;
 * - every 5 s a client that hangs up mid-blob, after 1 s at 20 MB/s, on the
 *   blob of 3b (256 MiB, 64 with --quick; the first ones follow its fill);
 * - every 2 s a Range read of 1 MiB, on that blob or on a pulled layer;
 * - every second a manifest GET without a token and one with a forged
 *   token (401), besides the 401 challenge that starts every pull.
 */
import { MediaType } from "../../tests/support/images";
import { MB, type Context, type Scenario } from "../lib/context";
import { memoryOf, startBenchDocxy } from "../lib/docxy";
import { sampleEverySecond, slope, windows, type Sample } from "../lib/process-sampler";
import { disconnectMidBlob, pull, rangeRead, Tally, unauthorized } from "../lib/soak-clients";
import { pushSoakImages, type SoakImage } from "../lib/soak-images";
import type { Measure, Row } from "../lib/stats";
import { loadgen } from "../loadgen";

/** Wall seconds that stand for an hour: the rates below are six times an hour's. */
const HOUR_EQUIVALENT = 600;
const COLD_EVERY = 4;

/** Runs `job` every `seconds` until `end`; a slow job delays the next, never overlaps it. */
async function every(seconds: number, end: number, job: () => Promise<void>): Promise<void> {
  while (performance.now() < end) {
    const next = performance.now() + seconds * 1000;
    await job();
    await Bun.sleep(Math.max(0, Math.min(next, end) - performance.now()));
  }
}

const pick = <T>(xs: T[]): T | undefined => xs[Math.floor(Math.random() * xs.length)];
const mb = (name: string, xs: number[]): Measure => ({ name, unit: "MB", samples: xs.map((x) => x / MB) });

export const soak: Scenario = {
  id: "soak",
  title: "soak: an hour-equivalent of mixed load on one docxy",
  async run({ world, settings, log }: Context) {
    const { upstream, wan } = world;
    const seconds = settings.soakSeconds;
    const images = await pushSoakImages(upstream, Math.ceil(seconds / COLD_EVERY) + 1);
    log(`pushed ${images.length} small images to cold-pull during the soak`);

    const d = await startBenchDocxy(upstream);
    const tally = new Tally();
    let samples: Sample[];
    try {
      const wanUrl = `${d.url}/v2/${wan.blob.repository}/blobs/${wan.blob.digest}`;
      const pulled: SoakImage[] = [];
      let nextCold = 0;
      const sampler = sampleEverySecond(d.pid);
      const end = performance.now() + seconds * 1000;
      await Promise.all([
        every(COLD_EVERY, end, () =>
          tally.guard(async () => {
            const image = images[nextCold++];
            if (!image) return;
            await pull(d, image, "cold pull", tally);
            pulled.push(image);
          }),
        ),
        ...[0, 1].map(() =>
          every(0.5, end, async () => {
            const image = pick(pulled);
            if (image) await tally.guard(() => pull(d, image, "warm pull", tally));
            else await Bun.sleep(250);
          }),
        ),
        every(20, end, () =>
          tally.guard(async () => {
            const image = pick(pulled);
            if (!image) return;
            const r = await loadgen({
              url: `${d.url}/v2/${image.repository}/manifests/${image.tag}`,
              method: "HEAD",
              headers: { Accept: MediaType.dockerManifest, Authorization: await d.token(image.repository) },
              connections: 8,
              seconds: 3,
            });
            tally.add("manifest HEAD", r.requests - r.errors);
            if (r.errors) tally.unexpected(`manifest HEAD: ${JSON.stringify(r.statuses)}`, r.errors);
          }),
        ),
        every(5, end, () => tally.guard(async () => disconnectMidBlob(wanUrl, wan.blob.size, await d.token(wan.blob.repository), tally))),
        every(2, end, () =>
          tally.guard(async () => {
            const image = Math.random() < 0.5 ? undefined : pick(pulled);
            const blob = image?.blobs.at(-1);
            if (image && blob) await rangeRead(`${d.url}/v2/${image.repository}/blobs/${blob.digest}`, blob.size, await d.token(image.repository), tally);
            else await rangeRead(wanUrl, wan.blob.size, await d.token(wan.blob.repository), tally);
          }),
        ),
        every(1, end, () => tally.guard(() => unauthorized(d, pick(pulled) ?? images[0]!, tally))),
        // a 10-minute run says where it is
        every(60, end, async () => {
          const m = await memoryOf(d.pid);
          log(`soak ${((seconds * 1000 - (end - performance.now())) / 1000).toFixed(0)} s: RSS ${(m.rss / MB).toFixed(0)} MB, ${tally.requests} client operations, ${tally.counts.unexpected ?? 0} unexpected`);
        }),
      ]);
      samples = await sampler.stop();
    } finally {
      await d.stop();
    }
    const load = Object.entries(tally.counts).map(([what, n]) => `${what} ${n}`);
    log(`soak load served: ${load.join(", ")}${tally.reasons.length ? `; unexpected, e.g.: ${tally.reasons.join(" | ")}` : ""}`);

    const { warmedUp, first, last } = windows(samples);
    const perHour = (ys: number[]) => slope(warmedUp.map((s, i) => ({ t: s.t, y: ys[i]! }))) * HOUR_EQUIVALENT;
    const rssSlope = perHour(warmedUp.map((s) => s.rss / MB));
    const anonSlope = perHour(warmedUp.map((s) => s.anon / MB));
    const fdsFirstMax = Math.max(...first.map((s) => s.fds));
    log(`soak: ${samples.length} samples; RSS slope ${rssSlope.toFixed(1)} MB, RssAnon ${anonSlope.toFixed(1)} MB per hour-equivalent; fds ${first[0]?.fds} → ${last.at(-1)?.fds}`);

    const scenario = `8. soak, ${(seconds / 60).toFixed(0)} min = ${(seconds / HOUR_EQUIVALENT).toFixed(1)} hour-equivalent of mixed load`;
    const fds = (name: string, xs: Sample[]): Measure => ({ name, unit: "", samples: xs.map((s) => s.fds) });
    return [
      {
        scenario,
        a: mb("RSS, last 10 %", last.map((s) => s.rss)),
        b: mb("RSS, first 10 % after warm-up", first.map((s) => s.rss)),
        target: { text: "within 10 %", on: "ratio", max: 1.1 },
      },
      { scenario, a: mb("RssAnon, last 10 %", last.map((s) => s.anon)), b: mb("RssAnon, first 10 % after warm-up", first.map((s) => s.anon)) },
      {
        scenario,
        a: fds("open fds, last 10 %", last),
        b: fds("open fds, first 10 % after warm-up", first),
        // in-flight requests move the count from second to second; a leaked fd stays, lifting the whole last window
        target: { text: `no growth: median ≤ first 10 %'s max (${fdsFirstMax})`, on: "value", max: fdsFirstMax },
      },
      { scenario, a: { name: "RSS slope after warm-up", unit: "MB per hour-equivalent", samples: [rssSlope] } },
      { scenario, a: { name: "RssAnon slope after warm-up", unit: "MB per hour-equivalent", samples: [anonSlope] } },
      { scenario, a: { name: `unexpected answers, of ${tally.requests} client operations`, unit: "", samples: [tally.counts.unexpected ?? 0] } },
    ] satisfies Row[];
  },
};
