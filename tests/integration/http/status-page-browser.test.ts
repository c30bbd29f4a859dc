/**
 * The status page's cache browser and charts in a real browser (Debian's
 * Chromium, headless, driven by playwright-core) after real pulls through
 * the binary from the real registry: repositories, tags, platforms and sizes
 * that are the images' real blob sizes, charts drawn from the counted hits,
 * and a purge that works with the admin token and does nothing without it.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { ALL_MANIFESTS, docxyToken, waitFor } from "../../support/cache/harness";
import type { TestImage } from "../../support/images";
import { basic, json, startProxiedUpstream, type ProxiedUpstream } from "../../support/proxied-upstream";
import { skopeoOk } from "../../support/skopeo";

const ADMIN = "browser-admin-token-0123456789abcdef";
const CHROMIUM = "/usr/bin/chromium";
const unavailable = existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is missing: apt-get install -y chromium`;
if (unavailable) console.warn(`SKIPPED tests/integration/http/status-page-browser.test.ts: ${unavailable}`);

let env: ProxiedUpstream;
let browser: Browser | undefined;
let page: Page;
const problems: string[] = [];

/** Pulls every platform of a tag with plain v2 requests, as a client does: the tag, each manifest, each config and layer. */
async function pullAll(image: TestImage, tag: string, authorization?: string) {
  const token = await docxyToken(env.docxy.url, image.repository, authorization);
  const get = async (kind: string, reference: string) => {
    const response = await fetch(`${env.docxy.url}/v2/${image.repository}/${kind}/${reference}`, { headers: { authorization: `Bearer ${token}`, accept: ALL_MANIFESTS } });
    expect(response.status).toBe(200);
    await response.arrayBuffer();
  };
  await get("manifests", tag);
  for (const m of image.manifests) {
    if (image.index) await get("manifests", m.digest);
    for (const blob of [m.config, ...m.layers]) await get("blobs", blob.digest);
  }
}

/** The real bytes of an image (of the platforms given): each manifest, config and layer once. */
function sizeOf(image: TestImage, platforms = image.manifests): number {
  const blobs = new Map<string, number>(image.index && platforms === image.manifests ? [[image.index.digest, image.index.size]] : []);
  for (const m of platforms) for (const b of [m, m.config, ...m.layers]) blobs.set(b.digest, b.size);
  return [...blobs.values()].reduce((a, b) => a + b, 0);
}

const listed = async (token?: string) =>
  ((await json(await fetch(`${env.docxy.url}/status/cache`, { headers: token ? { authorization: `Bearer ${token}` } : {} }))).repositories as { repository: string }[]).map(
    (r) => r.repository,
  );
const rows = () => page.locator("tr.repository").evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-repository")));

beforeAll(async () => {
  env = await startProxiedUpstream({}, `[admin]\ntoken = "${ADMIN}"\n`);
  const { alpine, app, secret } = env.upstream.images;
  await pullAll(alpine, "latest");
  for (let i = 0; i < 2; i++) {
    await skopeoOk("copy", "--src-tls-verify=false", `docker://${env.host}/acme/app:v1`, `dir:${mkdtempSync(join(tmpdir(), "docxy-browser-"))}`);
  }
  await pullAll(secret, "latest", basic("alice", "secret")); // private: pulled with alice's own credentials
  // Whether docxy itself may read a repository is learnt in the background after the fetch.
  await waitFor(async () => (await listed()).length === 2, "acme/app and library/alpine known public");
  if (!unavailable) {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
    });
    page = await browser.newPage();
    page.on("console", (message) => {
      if (message.type() === "error" || message.type() === "warning") problems.push(message.text());
    });
    page.on("pageerror", (error) => problems.push(error.message));
    page.on("dialog", (dialog) => void dialog.accept()); // the purge's confirm()
    // Anything the page asks of another origin would fail offline; none may be asked.
    await page.route((url) => url.origin !== env.docxy.url, (route) => {
      problems.push(`external request: ${route.request().url()}`);
      return route.abort();
    });
  }
}, 120_000);
afterAll(async () => {
  await browser?.close();
  await env?.stop();
});

test.skipIf(unavailable !== undefined)("without the admin token: the public repositories with their real sizes, no purge; private ones hidden", async () => {
  const { alpine, app } = env.upstream.images;
  expect((await page.goto(`${env.docxy.url}/`))?.status()).toBe(200);
  await page.waitForSelector("tr.repository");
  expect(await rows()).toEqual(["acme/app", "library/alpine"]);
  expect(await page.locator("body").innerText()).not.toContain("private/secret");
  expect(await page.locator("#token-state").innerText()).toContain("no admin token");
  expect(await page.locator("button.purge").evaluateAll((buttons) => buttons.map((b) => b.hasAttribute("hidden")))).toEqual([true, true]);

  const alpineRow = page.locator('tr.repository[data-repository="library/alpine"]');
  expect(await alpineRow.locator("td.tags").innerText()).toBe("1");
  expect(await alpineRow.locator("td.size span").getAttribute("data-bytes")).toBe(String(sizeOf(alpine)));
  await alpineRow.locator("button.link").click();
  const tag = page.locator('tr.tag[data-tag="latest"]');
  await tag.waitFor();
  expect(await tag.locator("td.size span").getAttribute("data-bytes")).toBe(String(sizeOf(alpine)));
  expect(await tag.locator("td.cached span").getAttribute("data-bytes")).toBe(String(sizeOf(alpine)));
  expect(await tag.innerText()).toContain(alpine.digest.slice(0, 19));
  expect(await tag.locator("td.pinned").innerText()).toBe("–");
  const platforms = await tag.locator("li[data-platform]").evaluateAll((items) =>
    items.map((li) => [li.getAttribute("data-platform"), li.querySelector("span")!.getAttribute("data-bytes")]),
  );
  expect(platforms).toEqual(alpine.manifests.map((m) => [m.platform.variant ? "linux/arm64/v8" : "linux/amd64", String(sizeOf(alpine, [m]))]));

  await page.locator('tr.repository[data-repository="acme/app"] button.link').click();
  const v1 = page.locator('tr.tag[data-tag="v1"]');
  await v1.waitFor();
  expect(await v1.locator("td.size span").getAttribute("data-bytes")).toBe(String(sizeOf(app)));
  expect(await v1.locator("li").count()).toBe(0); // one platform, no index

  const screenshot = join(mkdtempSync(join(tmpdir(), "docxy-browser-")), "cache-browser.png"); // for people
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`cache browser screenshot: ${screenshot}`);

  // The server refuses a purge without the token, whatever the page shows.
  const refused = await page.evaluate(async () => (await fetch("/admin/cache/repositories?upstream=dockerhub&repository=acme/app", { method: "DELETE" })).status);
  expect(refused).toBe(401);
  expect(await listed(ADMIN)).toContain("acme/app");
}, 60_000);

test.skipIf(unavailable !== undefined)("the charts draw the counted hits, misses, bytes and upstream requests", async () => {
  const activity = await json(await fetch(`${env.docxy.url}/status/activity?minutes=360`));
  const total = (name: string) => (activity.series[name] as number[]).reduce((a, b) => a + b, 0);
  expect(total("hits")).toBeGreaterThan(0); // the second skopeo copy
  expect(total("misses")).toBeGreaterThan(0);
  expect(total("upstream_requests")).toBeGreaterThan(0);
  await page.reload();
  await page.waitForSelector("#chart-requests path[data-series=hits]");
  for (const [series, chart] of [["hits", "requests"], ["misses", "requests"], ["cache_bytes", "bytes"], ["upstream_bytes", "bytes"], ["upstream_requests", "upstream"]] as const) {
    const path = page.locator(`#chart-${chart} svg path[data-series=${series}]`);
    const d = (await path.getAttribute("d"))!;
    const points = [...d.matchAll(/[ML]([\d.]+) ([\d.]+)/g)].map((m) => Number(m[2]));
    expect(points).toHaveLength(360);
    expect(Math.min(...points)).toBeLessThan(90); // above the baseline somewhere: the chart shows traffic
    expect(Number(await path.getAttribute("data-total"))).toBeGreaterThanOrEqual(total(series)); // counted again since, never less
  }
  expect(await page.locator("#chart-requests figcaption").innerText()).toMatch(/hits \d+ misses \d+/);
}, 60_000);

test.skipIf(unavailable !== undefined)("with the admin token: private repositories too, and purge removes a repository", async () => {
  const { app } = env.upstream.images;
  await page.fill("#admin-token", "not-the-admin-token");
  await page.click("#use-token");
  await page.waitForFunction('document.getElementById("cache-message").textContent.includes("refused")');
  expect(await page.evaluate(() => sessionStorage.getItem("docxy.admin-token"))).toBeNull();

  await page.fill("#admin-token", ADMIN);
  await page.click("#use-token");
  await page.waitForFunction('document.querySelectorAll("tr.repository").length === 3');
  expect(await rows()).toEqual(["acme/app", "library/alpine", "private/secret"]);
  expect(await page.locator("#token-state").innerText()).toContain("admin token in use");
  expect(await page.evaluate(() => [sessionStorage.getItem("docxy.admin-token"), localStorage.length])).toEqual([ADMIN, 0]);
  expect(await page.locator("button.purge").evaluateAll((buttons) => buttons.every((b) => !b.hasAttribute("hidden")))).toBe(true);

  await page.locator('tr.repository[data-repository="acme/app"] button.purge').click();
  await page.locator('tr.repository[data-repository="acme/app"]').waitFor({ state: "detached" });
  expect(await page.locator("#cache-message").innerText()).toMatch(/^purged dockerhub\/acme\/app: \d+ removed/);
  expect(await rows()).toEqual(["library/alpine", "private/secret"]);
  expect(await listed(ADMIN)).toEqual(["library/alpine", "private/secret"]);
  await page.click("#forget-token");
  await page.waitForFunction('document.querySelectorAll("tr.repository").length === 1');
  expect(await rows()).toEqual(["library/alpine"]);
  // The browser logs each refused request; the two refusals above are this test's own.
  expect(problems).toEqual(Array(2).fill("Failed to load resource: the server responded with a status of 401 (Unauthorized)"));

  // Its content is gone from the cache: the next pull of its layer goes upstream again.
  const token = await docxyToken(env.docxy.url, app.repository);
  const layer = await fetch(`${env.docxy.url}/v2/${app.repository}/blobs/${app.manifests[0]!.layers[1]!.digest}`, { headers: { authorization: `Bearer ${token}` } });
  expect(layer.headers.get("x-cache")).toBe("MISS");
  await layer.arrayBuffer();
}, 60_000);
