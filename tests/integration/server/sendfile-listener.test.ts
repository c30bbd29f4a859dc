/**
 * The sendfile port against the real upstream, through the compiled binary:
 * a GET of a cached blob on the proxy port is a 307 there, which serves the
 * file with its exact length, Range and digest; misses and HEADs stay on the
 * proxy port; skopeo follows the redirect and pulls warm with no CDN request;
 * the port serves nothing without a valid ticket; and the settings it cannot
 * live with are refused at start. (The handler's answers one by one:
 * tests/http/sendfile-app.test.ts; Docker and containerd following the
 * redirect: tests/e2e/docker.test.ts and tests/e2e/containerd.test.ts.)
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { docxyToken, isCached, registryToml, sha256, startCachingDocxy, waitFor, type CachingDocxy } from "../../support/cache/harness";
import { DOCXY_BIN } from "../../support/docxy-process";
import { rawRequest } from "../../support/raw-http";
import { skopeoCopyOk } from "../../support/skopeo";
import { startUpstream, type Upstream } from "../../support/upstream";

const SENDFILE = "[server]\nsendfile_enabled = true\nsendfile_port = 0\n";
let upstream: Upstream;
let docxy: CachingDocxy;

beforeAll(async () => {
  upstream = await startUpstream({ onlyThroughProxy: true });
  docxy = await startCachingDocxy(SENDFILE + registryToml(upstream));
}, 180_000);
afterAll(async () => {
  await docxy?.stop();
  await upstream?.stop();
});

const sendfilePort = () => docxy.listeners.find((l) => l.role === "sendfile")!.port;
/** How many blobs the sendfile port has answered with 200, from docxy's own metrics. */
async function sendfileServed(): Promise<number> {
  const text = await (await fetch(`${docxy.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith("docxy_http_requests_total{") && l.includes('route="sendfile"') && l.includes('status="200"'));
  return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : 0;
}
const cdnGets = (digest: string) => upstream.cdnLog.filter((r) => r.method === "GET" && r.path.endsWith(`/${digest.slice(7)}/data`)).length;

/** A layer of library/alpine, cached through docxy (one MISS), and a token for it. */
async function cachedLayer() {
  const layer = upstream.images.alpine.manifests[0]!.layers[0]!;
  const authorization = `Bearer ${await docxyToken(docxy.url, "library/alpine")}`;
  const url = `${docxy.url}/v2/library/alpine/blobs/${layer.digest}`;
  if (!isCached(docxy.cacheDir, layer.digest)) {
    const miss = await fetch(url, { headers: { authorization } });
    expect(miss.status).toBe(200);
    expect(miss.headers.get("x-cache")).toBe("MISS"); // a miss streams from the proxy port itself
    expect(sha256(await miss.arrayBuffer())).toBe(layer.digest);
    await waitFor(() => isCached(docxy.cacheDir, layer.digest), "the commit");
  }
  return { layer, authorization, url };
}

test("a cached blob GET is a 307 to the sendfile port, which sends the file with its exact length and digest", async () => {
  const { layer, authorization, url } = await cachedLayer();
  const redirect = await fetch(url, { headers: { authorization }, redirect: "manual" });
  expect(redirect.status).toBe(307);
  expect(redirect.headers.get("x-cache")).toBe("HIT");
  expect(redirect.headers.get("docker-content-digest")).toBe(layer.digest);
  const location = new URL(redirect.headers.get("location")!);
  expect(`${location.host}${location.pathname}`).toBe(`127.0.0.1:${sendfilePort()}/blobs/${layer.digest}`);

  const raw = await rawRequest(location.href);
  expect(raw.status).toBe(200);
  expect(raw.headers["content-length"]).toBe(String(layer.size));
  expect(raw.headers["transfer-encoding"]).toBeUndefined();
  expect(raw.headers["docker-content-digest"]).toBe(layer.digest);
  expect(raw.headers["x-cache"]).toBe("HIT");
  expect(raw.truncated).toBe(false);
  expect(sha256(raw.body)).toBe(layer.digest);

  // What a client does: follow the redirect, resending its Range.
  const ranged = await fetch(url, { headers: { authorization, range: "bytes=10-19" } });
  expect(ranged.status).toBe(206);
  expect(ranged.headers.get("content-range")).toBe(`bytes 10-19/${layer.size}`);
  expect(Buffer.from(await ranged.arrayBuffer())).toEqual(readFileSync(join(docxy.cacheDir, "blobs", "sha256", layer.digest.slice(7))).subarray(10, 20));
  const beyond = await fetch(location, { headers: { range: `bytes=${layer.size}-` } });
  expect({ status: beyond.status, range: beyond.headers.get("content-range") }).toEqual({ status: 416, range: `bytes */${layer.size}` });

  const head = await fetch(url, { method: "HEAD", headers: { authorization }, redirect: "manual" });
  expect({ status: head.status, length: head.headers.get("content-length"), cache: head.headers.get("x-cache") }).toEqual({
    status: 200,
    length: String(layer.size),
    cache: "HIT",
  });
  expect(cdnGets(layer.digest)).toBe(1);
});

test("the sendfile port serves nothing without a ticket for that very blob", async () => {
  const { layer, authorization, url } = await cachedLayer();
  const location = new URL((await fetch(url, { headers: { authorization }, redirect: "manual" })).headers.get("location")!);
  const other = upstream.images.alpine.manifests[0]!.config.digest;
  const cases: [string, string, number, string][] = [
    ["no ticket", `${location.origin}${location.pathname}`, 403, "DENIED"],
    ["a ticket for another blob", `${location.origin}/blobs/${other}${location.search}`, 403, "DENIED"],
    ["a forged ticket", `${location.origin}${location.pathname}?ticket=${location.searchParams.get("ticket")!.replace(/.$/, (c) => (c === "A" ? "B" : "A"))}`, 403, "DENIED"],
    ["another path", `${location.origin}/v2/library/alpine/blobs/${layer.digest}${location.search}`, 404, "NOT_FOUND"],
  ];
  for (const [why, target, status, code] of cases) {
    const response = await fetch(target);
    expect({ why, status: response.status, code: ((await response.json()) as { errors: { code: string }[] }).errors[0]!.code }).toEqual({ why, status, code });
  }
  const post = await fetch(location, { method: "POST" });
  expect({ status: post.status, allow: post.headers.get("allow") }).toEqual({ status: 405, allow: "GET, HEAD" });
});

test("skopeo pulls warm through the redirect: same digests, no CDN request", async () => {
  const copy = () => skopeoCopyOk(new URL(docxy.url).host, "acme/app:v1");
  const image = upstream.images.app;
  const cold = await copy();
  for (const l of [image.manifests[0]!.config, ...image.manifests[0]!.layers]) {
    expect(cold[l.digest.slice(7)]).toBe(l.digest);
    await waitFor(() => isCached(docxy.cacheDir, l.digest), "the commit");
  }
  const cdnBefore = upstream.cdnLog.length;
  const servedBefore = await sendfileServed();
  expect(await copy()).toEqual(cold);
  expect(upstream.cdnLog.length).toBe(cdnBefore);
  // Every blob of the warm copy (config and layers) came from the sendfile port.
  expect((await sendfileServed()) - servedBefore).toBe(1 + image.manifests[0]!.layers.length);
}, 60_000);

test("settings the sendfile port cannot live with are refused at start", async () => {
  for (const [extra, problem] of [
    ["[cache]\nenabled = false\n", "server.sendfile_enabled: serves cache hits, so it needs cache.enabled = true"],
    ['[limits]\nbytes_per_second = "10MB"\n', "limits.bytes_per_second could not shape them"],
    ["[server]\nhttp_port = 5000\n", "server.sendfile_port: 5000 is already the proxy's port"],
  ] as const) {
    const config = extra.startsWith("[server]")
      ? `[server]\nsendfile_enabled = true\nsendfile_port = 5000\nhttp_port = 5000\n${registryToml(upstream)}`
      : `${SENDFILE}${extra}${registryToml(upstream)}`;
    const file = join(mkdtempSync(join(tmpdir(), "docxy-sendfile-config-")), "docxy.toml");
    writeFileSync(file, config);
    const child = Bun.spawn([DOCXY_BIN, "check-config", file], { env: { PATH: process.env.PATH ?? "" }, stdout: "ignore", stderr: "pipe" });
    const [stderr, code] = await Promise.all([new Response(child.stderr).text(), child.exited]);
    rmSync(join(file, ".."), { recursive: true, force: true });
    expect({ code, stderr }).toMatchObject({ code: 2, stderr: expect.stringContaining(problem) });
  }
});
