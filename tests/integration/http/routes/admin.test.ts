/** The admin API through the binary against the real upstream: token, stats, pre-warm, listing, purge. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startDocxy } from "../../../support/docxy-process";
import { json, startProxiedUpstream, type ProxiedUpstream } from "../../../support/proxied-upstream";
import { hostManifest } from "../../../e2e/support/images";

const ADMIN = "admin-token-for-tests-0123456789";
let env: ProxiedUpstream;
beforeAll(async () => {
  env = await startProxiedUpstream({}, `[admin]\ntoken = "${ADMIN}"\n`);
}, 60_000);
afterAll(async () => {
  await env?.stop();
});

const admin = (path: string, init: RequestInit = {}) =>
  fetch(`${env.docxy.url}/admin${path}`, { ...init, headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json", ...init.headers } });

test("without the token the API refuses; without a configured token it does not exist", async () => {
  const refused = await fetch(`${env.docxy.url}/admin/cache`, { headers: { authorization: "Bearer wrong" } });
  expect(refused.status).toBe(401);
  expect((await json(refused)).errors[0].code).toBe("UNAUTHORIZED");
  const bare = await startDocxy();
  try {
    expect((await fetch(`${bare.url}/admin/cache`)).status).toBe(404);
  } finally {
    await bare.stop();
  }
});

test("pre-warm pulls one platform of a multi-arch image into the cache, with progress", async () => {
  const { alpine } = env.upstream.images;
  const amd64 = hostManifest(alpine);
  const response = await admin("/prewarm", { method: "POST", body: JSON.stringify({ image: "alpine:3.20", platforms: ["linux/amd64"] }) });
  expect(response.headers.get("content-type")).toBe("application/x-ndjson");
  const lines = (await response.text()).trim().split("\n").map((l) => JSON.parse(l));
  expect(lines.at(-1)).toEqual({ done: true, image: "alpine:3.20" });
  const digests = lines.slice(0, -1).map((l) => l.digest);
  expect(digests).toEqual([alpine.digest, amd64.digest, amd64.config.digest, ...amd64.layers.map((l) => l.digest)]);
  const arm64 = alpine.manifests.find((m) => m.platform.architecture === "arm64")!;
  expect(digests).not.toContain(arm64.digest);

  // the pre-warmed layer is now a hit for a client
  const { token } = await json(await fetch(`${env.docxy.url}/auth/dockerhub/token?scope=repository:library/alpine:pull`));
  const layer = await fetch(`${env.docxy.url}/v2/library/alpine/blobs/${amd64.layers[0]!.digest}`, { headers: { authorization: `Bearer ${token}` } });
  expect(layer.headers.get("x-cache")).toBe("HIT");
  await layer.arrayBuffer();

  const stats = await json(await admin("/cache"));
  expect(stats.enabled).toBe(true);
  expect(stats.entries).toBeGreaterThanOrEqual(digests.length);
  const tags = await json(await admin("/cache/tags"));
  expect(tags).toContainEqual(expect.objectContaining({ upstream: "dockerhub", repository: "library/alpine", tag: "3.20", digest: alpine.digest }));
});

test("a bad pre-warm request is a registry-JSON 400; an unknown image reports its error in the stream", async () => {
  const bad = await admin("/prewarm", { method: "POST", body: JSON.stringify({ image: "" }) });
  expect(bad.status).toBe(400);
  const missing = await admin("/prewarm", { method: "POST", body: JSON.stringify({ image: "acme/nope:1" }) });
  const last = JSON.parse((await missing.text()).trim().split("\n").at(-1)!);
  expect(last.done).toBe(false);
  expect(last.error).toContain("acme/nope");
});

test("purging a repository removes its tags and the content nothing else uses", async () => {
  const { alpine } = env.upstream.images;
  const removed = await json(await admin("/cache/repositories?upstream=dockerhub&repository=library/alpine", { method: "DELETE" }));
  expect(removed.removed).toContain(alpine.digest);
  const tags = await json(await admin("/cache/tags"));
  expect(tags.filter((t: { repository: string }) => t.repository === "library/alpine")).toEqual([]);
  expect((await json(await admin(`/cache/blobs/${alpine.digest}`, { method: "DELETE" }))).removed).toEqual([]); // already gone
  expect((await admin("/cache/blobs/not-a-digest", { method: "DELETE" })).status).toBe(400);
});

test("reload answers what it re-read (no certificate on a plain-HTTP docxy)", async () => {
  expect(await json(await admin("/reload", { method: "POST" }))).toEqual({ certificate: "none" });
});
