/**
 * The pre-warm list through the binary: `docxy prewarm --file` runs a list
 * once through a running docxy's admin API (bad lines and failed images by
 * line number, exit 1 unless all went well), and a docxy with `[prewarm]
 * file` and a short interval fills its cache with no client, shows the run
 * on its status page and in its metrics, and then serves the pull as HITs.
 * The schedule in process: tests/cache/prewarm-schedule.test.ts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ALL_MANIFESTS, docxyToken, registryToml, startCachingDocxy, waitFor, type CachingDocxy } from "../../support/cache/harness";
import { removeAtExit } from "../../support/cleanup";
import { DOCXY_BIN } from "../../support/docxy-process";
import { startUpstream, type Upstream } from "../../support/upstream";

const ADMIN = "admin-token-for-prewarm-file-0123";
const dir = mkdtempSync(join(tmpdir(), "docxy-prewarm-file-"));
removeAtExit(dir);
let upstream: Upstream;
let onDemand: CachingDocxy;
let scheduled: CachingDocxy;

beforeAll(async () => {
  upstream = await startUpstream({ onlyThroughProxy: true });
  writeFileSync(join(dir, "scheduled.txt"), "acme/app:v1\n");
  const base = `${registryToml(upstream)}[admin]\ntoken = "${ADMIN}"\n`;
  onDemand = await startCachingDocxy(base);
  scheduled = await startCachingDocxy(`${base}[prewarm]\nfile = "${join(dir, "scheduled.txt")}"\ninterval = "1s"\n`);
}, 60_000);
afterAll(async () => {
  await onDemand?.stop();
  await scheduled?.stop();
  await upstream?.stop();
});

async function prewarmFile(file: string) {
  const child = Bun.spawn([DOCXY_BIN, "prewarm", "--file", file, "--url", onDemand.url], {
    env: { PATH: process.env.PATH ?? "", DOCXY_ADMIN_TOKEN: ADMIN },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { stdout, stderr, code };
}

async function manifestCache(d: CachingDocxy, repository: string, reference: string) {
  const response = await fetch(`${d.url}/v2/${repository}/manifests/${reference}`, {
    headers: { authorization: `Bearer ${await docxyToken(d.url, repository)}`, accept: ALL_MANIFESTS },
  });
  await response.arrayBuffer();
  return { cache: response.headers.get("x-cache"), digest: response.headers.get("docker-content-digest") };
}

test("docxy prewarm --file: each line pulled in order; a bad line and a failed image are reported by line and the others still run (exit 1)", async () => {
  const file = join(dir, "mixed.txt");
  writeFileSync(file, "# for tomorrow\nacme/app:v1\nregistry-1.docker.io/library/alpine\nacme/nosuch:v0\nalpine:3.20 linux/amd64\n");
  const { stdout, code } = await prewarmFile(file);
  expect(code).toBe(1);
  const lines = stdout.trim().split("\n");
  const { app, alpine } = upstream.images;
  const amd64 = alpine.manifests.find((m) => m.platform.architecture === "amd64")!;
  // Items: the manifests (an index and its child for alpine), the config, the layers.
  expect(lines[0]).toMatch(new RegExp(`^line 2 acme/app:v1: ${2 + app.manifests[0]!.layers.length} items, [\\d.]+ MiB$`));
  expect(lines[1]).toMatch(/^line 4 acme\/nosuch:v0: failed: /);
  expect(lines[2]).toMatch(new RegExp(`^line 5 alpine:3\\.20 linux/amd64: ${3 + amd64.layers.length} items, [\\d.]+ MiB$`));
  expect(lines[3]).toBe('line 3: skipped: "registry-1.docker.io/library/alpine" can never name an image: Docker Hub\'s images are named "docker.io/…" here (write "docker.io/library/alpine")');
  expect(lines[4]).toMatch(new RegExp(`^${file}: partial, 2 of 3 images, [\\d.]+ MiB, 1 bad lines$`));
  expect(await manifestCache(onDemand, "acme/app", "v1")).toEqual({ cache: "HIT", digest: upstream.images.app.digest });
  expect(await manifestCache(onDemand, "library/alpine", "3.20")).toEqual({ cache: "HIT", digest: upstream.images.alpine.digest });
});

test("docxy prewarm --file: a clean list exits 0; an unreadable file and a missing token exit 1", async () => {
  const file = join(dir, "clean.txt");
  writeFileSync(file, "acme/app:v1\n");
  const clean = await prewarmFile(file);
  expect(clean.code).toBe(0);
  expect(clean.stdout).toContain(`${file}: ok, 1 of 1 images`);
  expect((await prewarmFile(join(dir, "absent.txt"))).stderr).toContain("cannot read");
  const child = Bun.spawn([DOCXY_BIN, "prewarm", "--file", file, "--url", onDemand.url], { env: { PATH: process.env.PATH ?? "" }, stdout: "pipe", stderr: "pipe" });
  expect(await child.exited).toBe(1);
  expect(await new Response(child.stderr).text()).toContain("401");
});

test("[prewarm] file with an interval: filled with no client, shown on the status page and in the metrics, then pulled as a HIT", async () => {
  const status = async () => (await fetch(`${scheduled.url}/admin/prewarm/status`, { headers: { authorization: `Bearer ${ADMIN}` } })).json() as Promise<any>;
  await waitFor(async () => (await status()).runs.ok >= 2, "two scheduled runs", 30_000);
  const page = await (await fetch(`${scheduled.url}/`, { headers: { authorization: `Bearer ${ADMIN}` } })).text();
  expect(page).toMatch(/<h2>Pre-warm<\/h2>[\s\S]*<b class="ok">ok<\/b>, 1 of 1 images/);
  const metrics = await (await fetch(`${scheduled.url}/metrics`)).text();
  expect(Number(/^docxy_prewarm_runs_total\{result="ok"\} (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(2);
  expect(metrics).toMatch(/^docxy_prewarm_last_success_timestamp_seconds \d/m);
  expect(await manifestCache(scheduled, "acme/app", "v1")).toEqual({ cache: "HIT", digest: upstream.images.app.digest });
});
