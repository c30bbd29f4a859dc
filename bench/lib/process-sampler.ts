/**
 * Samples a process once a second for the soak (8): RSS (VmRSS), RssAnon
 * (its heap and buffers without mapped files: docxy's /metrics has no
 * process or heap metrics, so this stands in for the JS heap) and open file
 * descriptors (entries of /proc/<pid>/fd: sockets, cache files, pipes). The
 * series is judged by windows of it and by its least-squares slope, because
 * a leak shows as a trend that a peak would hide.
 */
import { readdirSync } from "node:fs";
import { memoryOf } from "./docxy";

export interface Sample {
  /** seconds since sampling started */
  t: number;
  rss: number;
  anon: number;
  fds: number;
}

export interface Sampler {
  /** stops sampling; resolves with every sample taken */
  stop(): Promise<Sample[]>;
}

export function sampleEverySecond(pid: number): Sampler {
  const samples: Sample[] = [];
  const start = performance.now();
  let sampling = true;
  const loop = (async () => {
    while (sampling) {
      const due = performance.now() + 1000;
      const m = await memoryOf(pid);
      samples.push({ t: (performance.now() - start) / 1000, rss: m.rss, anon: m.anon, fds: readdirSync(`/proc/${pid}/fd`).length });
      await Bun.sleep(Math.max(0, due - performance.now()));
    }
  })();
  // If the process dies, the rejection waits for stop(), instead of ending the bench as unhandled.
  loop.catch(() => {});
  return {
    async stop() {
      sampling = false;
      await loop;
      return samples;
    },
  };
}

/**
 * The first 10 % of the series after a warm-up of the first 10 % (the cache, the JIT and the
 * connection pools fill then), and the last 10 %.
 */
export function windows<T>(series: T[]): { warmedUp: T[]; first: T[]; last: T[] } {
  const tenth = Math.max(1, Math.floor(series.length / 10));
  const warmedUp = series.slice(tenth);
  return { warmedUp, first: warmedUp.slice(0, tenth), last: series.slice(-tenth) };
}

/** Least-squares slope of y over t, in y's unit per second. */
export function slope(points: { t: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return NaN;
  const mt = points.reduce((s, p) => s + p.t, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  const num = points.reduce((s, p) => s + (p.t - mt) * (p.y - my), 0);
  const den = points.reduce((s, p) => s + (p.t - mt) ** 2, 0);
  return num / den;
}
