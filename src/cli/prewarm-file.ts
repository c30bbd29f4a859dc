/**
 * `docxy prewarm --file FILE`: one run of a list through a running docxy's
 * admin API. The file is read here and posted as it is, so the server parses
 * it with the same parser as its own `[prewarm] file` (a bad line comes back
 * with its number) and the run is a pre-warm run like the scheduled ones:
 * one at a time, shown on the status page and in the metrics. While another
 * run is going, this one waits for it, then starts.
 *
 * Prints a line per image as it finishes and a summary; exit 0 when every
 * line worked, 1 otherwise. Tested through the binary: tests/integration/cli/prewarm-file.test.ts.
 */
import { readFile } from "node:fs/promises";
import type { PrewarmRun, PrewarmStatus } from "../cache/prewarm-schedule";

const POLL_MS = 500;

export async function prewarmFile(file: string, url: string, token: string): Promise<number> {
  let list: string;
  try {
    list = await readFile(file, "utf8");
  } catch (error) {
    process.stderr.write(`docxy prewarm: cannot read ${file}: ${(error as Error).message}\n`);
    return 1;
  }
  const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
  const status = async (): Promise<PrewarmStatus> => {
    const response = await fetch(`${url}/admin/prewarm/status`, { headers });
    if (!response.ok) throw new Error(`${url} answered ${response.status}: ${await response.text()}`);
    return (await response.json()) as PrewarmStatus;
  };

  let started: PrewarmRun | undefined;
  let waited = false;
  while (!started) {
    const response = await fetch(`${url}/admin/prewarm/run`, { method: "POST", headers, body: JSON.stringify({ list }) });
    if (response.status === 202) started = (await response.json()) as PrewarmRun;
    else if (response.status === 409 && (await status()).running) {
      if (!waited) process.stdout.write("docxy prewarm: another run is going; waiting for it to finish\n");
      waited = true;
      await Bun.sleep(POLL_MS);
    } else {
      process.stderr.write(`docxy prewarm: ${url} answered ${response.status}: ${await response.text()}\n`);
      return 1;
    }
  }

  let shown = 0;
  for (;;) {
    const response = await fetch(`${url}/admin/prewarm/runs/${started.id}`, { headers });
    if (!response.ok) throw new Error(`${url} answered ${response.status}: ${await response.text()}`);
    const run = (await response.json()) as PrewarmRun;
    for (const image of run.images.slice(shown)) {
      process.stdout.write(`line ${image.line} ${image.image}: ${image.ok ? `${image.items} items, ${mib(image.bytes)}` : `failed: ${image.error}`}\n`);
    }
    shown = run.images.length;
    if (run.finished) {
      for (const problem of run.problems) process.stdout.write(`line ${problem.line}: skipped: ${problem.error}\n`);
      const ok = run.images.filter((i) => i.ok).length;
      process.stdout.write(`${file}: ${run.result}, ${ok} of ${run.images.length} images, ${mib(run.bytes)}${run.problems.length ? `, ${run.problems.length} bad lines` : ""}\n`);
      return run.result === "ok" ? 0 : 1;
    }
    await Bun.sleep(POLL_MS);
  }
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
