/**
 * The scheduled pre-warm list (cache/prewarm-schedule.ts) in process, with
 * docxy's services and app built from a configuration against the real test
 * registry: runs at start and on the interval with no client, re-reads its
 * file, reports bad lines and failed images and goes on, and a later pull is
 * a cache HIT. The admin routes and metrics read the same account. Through
 * the binary (`docxy prewarm --file`): tests/integration/cli/prewarm-file.test.ts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { PrewarmRun, PrewarmStatus } from "../../src/cache/prewarm-schedule";
import { createApp } from "../../src/http/app";
import type { Services } from "../../src/services";
import { inProcessServices } from "../support/services";
import { startUpstream, upstreamEntryToml, type Upstream } from "../support/upstream";

const ADMIN = "admin-token-for-prewarm-tests-0123";
/** What Docker sends for a manifest (as several header lines, joined): the Accept class a pre-warm fills. */
const DOCKER_ACCEPT = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");
let upstream: Upstream;
let scheduled: { services: Services; file: string };
let onDemand: Services;

beforeAll(async () => {
  upstream = await startUpstream();
  const first = await inProcessServices(`${upstreamEntryToml(upstream)}`); // for its temporary directory
  const file = join(first.dir, "prewarm.txt");
  writeFileSync(file, "# images for the morning\nacme/app:v1\nregistry-1.docker.io/library/alpine\n\nalpine:3.20 linux/arm64/v8\nacme/nosuch:v0\n");
  const toml = `${upstreamEntryToml(upstream)}[admin]\ntoken = "${ADMIN}"\n`;
  scheduled = { services: (await inProcessServices(`${toml}[prewarm]\nfile = "${file}"\ninterval = "1s"\n`)).services, file };
  onDemand = (await inProcessServices(toml)).services;
}, 60_000);
afterAll(async () => {
  scheduled?.services.prewarm?.stop();
  await upstream?.stop();
});

async function until<T>(read: () => T | undefined, what: string): Promise<T> {
  for (let i = 0; i < 300; i++) {
    const value = read();
    if (value !== undefined) return value;
    await Bun.sleep(100);
  }
  throw new Error(`never happened: ${what}`);
}

test("the file runs at start with no client: bad lines and failed images reported by line, the others cached; a pull is then a HIT", async () => {
  const { services } = scheduled;
  const run = await until(() => services.prewarm!.status().last, "a finished run");
  expect(run.result).toBe("partial");
  expect(run.problems.map((p) => [p.line, p.text])).toEqual([[3, "registry-1.docker.io/library/alpine"]]);
  expect(run.problems[0]!.error).toContain('write "docker.io/library/alpine"');
  expect(run.images.map((i) => [i.line, i.image, i.ok])).toEqual([
    [2, "acme/app:v1", true],
    [5, "alpine:3.20 linux/arm64/v8", true],
    [6, "acme/nosuch:v0", false],
  ]);
  expect(run.images[2]!.error).toContain("acme/nosuch:v0");

  const { app, alpine } = upstream.images;
  const appManifest = app.manifests[0]!;
  expect(run.images[0]!.bytes).toBe(app.bytes.length + appManifest.config.size + appManifest.layers.reduce((n, l) => n + l.size, 0));
  const web = createApp(services);
  // A client as Docker is one: a token from docxy's realm (the registry wants one even for public images), then the pull.
  const token = (await (await web.handle(new Request("http://127.0.0.1:5000/auth/token?service=test-registry&scope=repository:acme/app:pull"))).json()) as { token: string };
  const headers = { authorization: `Bearer ${token.token}` };
  const manifest = await web.handle(new Request("http://127.0.0.1:5000/v2/acme/app/manifests/v1", { headers: { ...headers, accept: DOCKER_ACCEPT } }));
  expect(manifest.headers.get("x-cache")).toBe("HIT");
  expect(manifest.headers.get("docker-content-digest")).toBe(app.digest);
  const layer = appManifest.layers[0]!;
  const blob = await web.handle(new Request(`http://127.0.0.1:5000/v2/acme/app/blobs/${layer.digest}`, { headers }));
  expect(blob.headers.get("x-cache")).toBe("HIT");
  expect(`sha256:${new Bun.CryptoHasher("sha256").update(await blob.arrayBuffer()).digest("hex")}`).toBe(layer.digest);
  // Only the platform the line asked for.
  const arm64 = alpine.manifests.find((m) => m.platform.architecture === "arm64")!;
  const amd64 = alpine.manifests.find((m) => m.platform.architecture === "amd64")!;
  expect(services.cache!.index.getBlob(arm64.config.digest)).toBeDefined();
  expect(services.cache!.index.getBlob(amd64.config.digest)).toBeUndefined();
});

test("each run re-reads the file: fixed, the next run on the interval is ok, and the metrics and admin status say so", async () => {
  const { services, file } = scheduled;
  writeFileSync(file, "acme/app:v1\nalpine:3.20 linux/arm64/v8\n");
  const run = await until(() => {
    const last = services.prewarm!.status().last;
    return last?.result === "ok" ? last : undefined;
  }, "a run of the fixed file");
  expect(run.images.map((i) => [i.line, i.ok])).toEqual([
    [1, true],
    [2, true],
  ]);
  expect(run.problems).toEqual([]);

  const web = createApp(services);
  const metrics = await (await web.handle(new Request("http://127.0.0.1:5000/metrics"))).text();
  expect(metrics).toMatch(/^docxy_prewarm_runs_total\{result="partial"\} [1-9]/m);
  expect(metrics).toMatch(/^docxy_prewarm_runs_total\{result="ok"\} [1-9]/m);
  expect(metrics).toMatch(/^docxy_prewarm_last_success_timestamp_seconds \d/m);
  const status = (await (await web.handle(new Request("http://127.0.0.1:5000/admin/prewarm/status", { headers: { authorization: `Bearer ${ADMIN}` } }))).json()) as PrewarmStatus;
  expect(status.file).toBe(file);
  expect(status.interval_seconds).toBe(1);
  expect(status.runs.ok).toBeGreaterThan(0);
  const page = await (await web.handle(new Request("http://127.0.0.1:5000/", { headers: { authorization: `Bearer ${ADMIN}` } }))).text();
  expect(page).toContain("<h2>Pre-warm</h2>");
});

test("POST /admin/prewarm/run runs a posted list once; a second while it goes is refused with 409", async () => {
  const web = createApp(onDemand);
  const admin = (path: string, init: RequestInit = {}) =>
    web.handle(new Request(`http://127.0.0.1:5000/admin${path}`, { ...init, headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" } }));
  const noFile = await admin("/prewarm/run", { method: "POST" });
  expect(noFile.status).toBe(409);
  const started = await admin("/prewarm/run", { method: "POST", body: JSON.stringify({ list: "acme/app:v1\nbad line here\n" }) });
  expect(started.status).toBe(202);
  const { id } = (await started.json()) as PrewarmRun;
  const again = await admin("/prewarm/run", { method: "POST", body: JSON.stringify({ list: "acme/app:v1" }) });
  expect(again.status).toBe(409);
  await until(() => (onDemand.prewarm!.status().last?.id === id ? true : undefined), "the posted run finished");
  const status = (await (await admin("/prewarm/status")).json()) as PrewarmStatus;
  expect(status.last).toMatchObject({ id, source: "admin", result: "partial" });
  expect(status.last!.problems.map((p) => p.line)).toEqual([2]);
  expect(status.last!.images.map((i) => [i.image, i.ok])).toEqual([["acme/app:v1", true]]);
  expect(await (await admin(`/prewarm/runs/${id}`)).json()).toEqual(status.last!);
  expect((await admin(`/prewarm/runs/${id + 1}`)).status).toBe(404);
});
