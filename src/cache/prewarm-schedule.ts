/**
 * Scheduled pre-warming (`[prewarm] file` and `interval`): the images of a
 * list file pulled into the cache at start and then every interval, with no
 * client. The file is read again for each run, so an operator edits it
 * without a restart. Images go one at a time (a run must not crowd out
 * clients' own fills), and never two runs at once: a run asked for while one
 * is going is refused, its asker sees the running one.
 *
 * A line that does not parse is reported with its number and the others
 * still run; an image that fails is reported with its error and the next one
 * runs. The last run's account is what the admin API, the status page and
 * the metrics show.
 */
import { readFile } from "node:fs/promises";
import type { Logger } from "../observability/logger";
import { imageReference, type ListProblem, parseImageList } from "./image-list";
import type { PrewarmStep } from "./prewarm";

export interface PrewarmedImage {
  line: number;
  image: string;
  ok: boolean;
  /** Manifests and blobs now in the cache for it. */
  items: number;
  bytes: number;
  error?: string;
}

export type PrewarmResult = "ok" | "partial" | "failed";

export interface PrewarmRun {
  id: number;
  /** The list file, or "admin" for a list posted to the admin API. */
  source: string;
  started: string;
  finished?: string;
  result?: PrewarmResult;
  /** While running: the line being pulled. */
  current?: string;
  images: PrewarmedImage[];
  /** Lines that do not parse (or the file that cannot be read, as line 0). */
  problems: ListProblem[];
  bytes: number;
}

export interface PrewarmStatus {
  file?: string;
  interval_seconds?: number;
  running?: PrewarmRun;
  last?: PrewarmRun;
  runs: Record<PrewarmResult, number>;
  /** Seconds since the epoch of the end of the last run whose result was ok. */
  last_success?: number;
}

export interface PrewarmScheduleOptions {
  /** The list file; empty: runs only happen with a list posted to the admin API. */
  file: string;
  /** Milliseconds between the start of runs; 0: only at start. */
  intervalMs: number;
  /** Pulls one image into the cache (cache/prewarm.ts through the cache front). */
  warm: (image: string, platforms: string[]) => AsyncIterable<PrewarmStep>;
  log: Logger;
}

const RECENT_RUNS = 16;

export class PrewarmSchedule {
  private running: PrewarmRun | undefined;
  private last: PrewarmRun | undefined;
  /** The last few finished runs, newest last: whoever started one finds its account even after later runs. */
  private readonly recent: PrewarmRun[] = [];
  private lastSuccess: number | undefined;
  private readonly runs: Record<PrewarmResult, number> = { ok: 0, partial: 0, failed: 0 };
  private timer: ReturnType<typeof setInterval> | undefined;
  private ids = 0;

  constructor(private readonly options: PrewarmScheduleOptions) {}

  /** A run now (with a file), then one every interval; an interval that finds a run still going skips its turn. */
  start(): void {
    if (!this.options.file) return;
    void this.run();
    if (this.options.intervalMs > 0) {
      this.timer = setInterval(() => void this.run(), this.options.intervalMs);
      this.timer.unref();
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /**
   * Starts a run of `list` (a posted list's text) or else of the file, and
   * returns it as it starts; undefined when a run is going already.
   */
  run(list?: string): PrewarmRun | undefined {
    if (this.running) return undefined;
    const run: PrewarmRun = { id: ++this.ids, source: list === undefined ? this.options.file : "admin", started: new Date().toISOString(), images: [], problems: [], bytes: 0 };
    this.running = run;
    void this.execute(run, list).finally(() => (this.running = undefined));
    return { ...run };
  }

  /** A run by id: the one going, or one of the last RECENT_RUNS finished. */
  find(id: number): PrewarmRun | undefined {
    if (this.running?.id === id) return { ...this.running, images: [...this.running.images] };
    return this.recent.find((run) => run.id === id);
  }

  status(): PrewarmStatus {
    const { file, intervalMs } = this.options;
    return {
      ...(file ? { file, interval_seconds: intervalMs / 1000 } : {}),
      ...(this.running ? { running: { ...this.running } } : {}),
      ...(this.last ? { last: this.last } : {}),
      runs: { ...this.runs },
      ...(this.lastSuccess === undefined ? {} : { last_success: this.lastSuccess }),
    };
  }

  private async execute(run: PrewarmRun, list: string | undefined): Promise<void> {
    const { log } = this.options;
    let text = list;
    if (text === undefined) {
      try {
        text = await readFile(run.source, "utf8");
      } catch (error) {
        run.problems.push({ line: 0, text: run.source, error: `cannot read the list: ${(error as Error).message}` });
      }
    }
    const { images, problems } = parseImageList(text ?? "");
    run.problems.push(...problems);
    for (const problem of problems) log.warn("prewarm list: line skipped", { source: run.source, line: problem.line, error: problem.error });
    for (const entry of images) {
      run.current = entry.text;
      const image = imageReference(entry.registry, entry.repository, entry.reference);
      const done: PrewarmedImage = { line: entry.line, image: entry.text, ok: true, items: 0, bytes: 0 };
      try {
        // A glob names no image to pull; pins take globs (README "Pinned images").
        if (entry.repositoryGlob || entry.tagGlob) throw new Error('a pre-warm line names one image; globs are for [cache] pin');
        for await (const step of this.options.warm(image, entry.platforms)) {
          done.items++;
          done.bytes += step.bytes;
        }
      } catch (error) {
        done.ok = false;
        done.error = (error as Error).message;
        log.warn("prewarm: image failed", { source: run.source, line: entry.line, image: entry.text, error: done.error });
      }
      run.images.push(done);
      run.bytes += done.bytes;
    }
    run.current = undefined;
    run.finished = new Date().toISOString();
    const ok = run.images.filter((i) => i.ok).length;
    run.result = ok === run.images.length && run.problems.length === 0 ? "ok" : ok > 0 ? "partial" : "failed";
    this.runs[run.result]++;
    if (run.result === "ok") this.lastSuccess = Date.now() / 1000;
    this.last = run;
    this.recent.push(run);
    if (this.recent.length > RECENT_RUNS) this.recent.shift();
    log.info("prewarm run finished", { source: run.source, result: run.result, ok, failed: run.images.length - ok, bad_lines: run.problems.length, bytes: run.bytes });
  }
}
