/**
 * The status page in a real browser (Debian's Chromium, headless, driven by
 * playwright-core): it renders real figures after real pulls and logs no
 * console error. A screenshot is left in the test's temp dir for people.
 * Then what it (and /metrics) tells whom: private pulls, client addresses and
 * upstream account names only to the bearer of the admin token.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser } from "playwright-core";
import { docxyToken, waitFor } from "../../../support/cache/harness";
import { startDocxy, type Docxy } from "../../../support/docxy-process";
import { basic, json, startProxiedUpstream, type ProxiedUpstream } from "../../../support/proxied-upstream";
import { skopeoOk } from "../../../support/skopeo";
import { upstreamEntryToml } from "../../../support/upstream";

const ADMIN = "status-admin-token-0123456789abcdef";

const CHROMIUM = "/usr/bin/chromium";
const unavailable = existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is missing: apt-get install -y chromium`;
if (unavailable) console.warn(`SKIPPED tests/integration/http/routes/status-page.test.ts: ${unavailable}`);

let env: ProxiedUpstream;
let browser: Browser | undefined;
beforeAll(async () => {
  env = await startProxiedUpstream({}, `[admin]\ntoken = "${ADMIN}"\n`);
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

describe("what the page and /metrics tell, and to whom", () => {
  const page = async (url: string, token?: string) => {
    const response = await fetch(`${url}/`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    expect(response.status).toBe(200);
    return response.text();
  };
  const manifest = async (repository: string, authorization?: string) => {
    const token = await docxyToken(env.docxy.url, repository, authorization);
    const response = await fetch(`${env.docxy.url}/v2/${repository}/manifests/${repository === "acme/app" ? "v1" : "latest"}`, {
      headers: { authorization: `Bearer ${token}`, accept: "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json" },
    });
    expect(response.status).toBe(200);
    await response.arrayBuffer();
  };

  beforeAll(async () => {
    await manifest("acme/app"); // public: anyone may read it upstream
    await manifest("private/secret", basic("alice", "secret")); // with alice's own credentials
    // Whether docxy itself may read a repository is learnt in the background after the fetch.
    await waitFor(async () => (await page(env.docxy.url)).includes("docker.io/acme/app:v1"), "acme/app known public");
  }, 30_000);

  test("without the admin token: public pulls only, and no client address", async () => {
    for (const token of [undefined, "not-the-admin-token"]) {
      const html = await page(env.docxy.url, token);
      expect(html).toContain("docker.io/acme/app:v1");
      expect(html).not.toContain("private/secret");
      expect(html).not.toContain("<td>127.0.0.1</td>");
      expect(html).not.toContain("<th>client</th>");
    }
  });

  test("with the admin token: every pull, with its client", async () => {
    const html = await page(env.docxy.url, ADMIN);
    expect(html).toContain("docker.io/acme/app:v1");
    expect(html).toContain("docker.io/private/secret:latest");
    expect(html).toContain("<td>127.0.0.1</td>");
  });

  test("/metrics names no repository, not even after a private pull", async () => {
    const response = await fetch(`${env.docxy.url}/metrics`);
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).toContain('docxy_cache_requests_total{kind="manifest"'); // the pulls were counted
    expect(text).not.toContain("private");
    expect(text).not.toContain("acme");
  });

  describe("with an upstream account", () => {
    let shared: Docxy;
    beforeAll(async () => {
      const account = 'credentials = [{ username = "alice", password = "secret" }]\n';
      shared = await startDocxy({ config: `[registry]\n${upstreamEntryToml(env.upstream, "dockerhub", account)}[admin]\ntoken = "${ADMIN}"\n` });
    });
    afterAll(async () => {
      await shared?.stop();
    });

    test("its name is shown to the admin token only; its quota to everyone", async () => {
      const anonymous = await page(shared.url);
      expect(anonymous).not.toContain("alice");
      expect(anonymous).toMatch(/<td>\?<\/td><\/tr>/); // quota not seen yet: "?"
      expect(await page(shared.url, ADMIN)).toContain("<td>alice: ?</td>");
    });
  });
});
