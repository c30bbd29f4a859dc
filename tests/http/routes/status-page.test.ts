/**
 * The status page in a real browser (Debian's Chromium, headless, driven by
 * playwright-core): it renders real figures after real pulls and logs no
 * console error. A screenshot is left in the test's temp dir for people.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser } from "playwright-core";
import { json, startProxiedUpstream, type ProxiedUpstream } from "../../support/proxied-upstream";
import { skopeoOk } from "../../support/skopeo";

const CHROMIUM = "/usr/bin/chromium";
const unavailable = existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is missing: apt-get install -y chromium`;
if (unavailable) console.warn(`SKIPPED tests/http/routes/status-page.test.ts: ${unavailable}`);

let env: ProxiedUpstream;
let browser: Browser | undefined;
beforeAll(async () => {
  env = await startProxiedUpstream();
  if (!unavailable) {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      // Quiet, offline Chromium: no background networking, no first-run, no sandbox as root.
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
    });
  }
}, 120_000);
afterAll(async () => {
  await browser?.close();
  await env?.stop();
});

test.skipIf(unavailable !== undefined)("after real pulls the page shows them, the cache figures and this proxy's client config, without console errors", async () => {
  await skopeoOk("copy", "--src-tls-verify=false", `docker://${env.host}/acme/app:v1`, `dir:${mkdtempSync(join(tmpdir(), "docxy-page-"))}`);
  await skopeoOk("copy", "--src-tls-verify=false", `docker://${env.host}/acme/app:v1`, `dir:${mkdtempSync(join(tmpdir(), "docxy-page-"))}`);
  const health = await json(await fetch(`${env.docxy.url}/health`));

  const page = await browser!.newPage();
  const problems: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error" || message.type() === "warning") problems.push(message.text());
  });
  page.on("pageerror", (error) => problems.push(error.message));
  const response = await page.goto(`${env.docxy.url}/`);
  expect(response?.status()).toBe(200);

  expect(await page.title()).toBe(`docxy ${health.version}`);
  const text = await page.locator("body").innerText();
  expect(text).toContain("docker.io/acme/app:v1"); // recent pulls
  expect(text).toMatch(/\d+ %\s*served from cache \(\d+ of \d+\)/);
  expect(text).not.toContain("no pulls yet");
  expect(text).toContain(`"registry-mirrors": ["${env.docxy.url}"]`);
  expect(text).toContain(`location = "${env.host}"`);
  expect(await page.locator("td.ok").first().innerText()).toBe("reachable"); // the dockerhub stand-in

  const screenshot = join(mkdtempSync(join(tmpdir(), "docxy-status-")), "status.png");
  await page.screenshot({ path: screenshot, fullPage: true });
  expect(Bun.file(screenshot).size).toBeGreaterThan(10_000);
  console.log(`status page screenshot: ${screenshot}`);
  expect(problems).toEqual([]);
}, 60_000);
