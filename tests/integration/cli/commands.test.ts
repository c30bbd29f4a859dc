/** The binary's subcommands: check-config, and prewarm and health against a running docxy. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DOCXY_BIN } from "../../support/docxy-process";
import { freePort } from "../../support/ports";
import { startProxiedUpstream, type ProxiedUpstream } from "../../support/proxied-upstream";

const ADMIN = "admin-token-for-cli-tests-0123456";
let env: ProxiedUpstream;
beforeAll(async () => {
  env = await startProxiedUpstream({}, `[admin]\ntoken = "${ADMIN}"\n`);
}, 60_000);
afterAll(async () => {
  await env?.stop();
});

async function run(args: string[], extraEnv: Record<string, string> = {}) {
  const child = Bun.spawn([DOCXY_BIN, ...args], { env: { PATH: process.env.PATH ?? "", ...extraEnv }, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { stdout, stderr, code };
}

test("check-config: a valid file is summarised (exit 0), an invalid one is listed (exit 2)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "docxy-check-"));
  await Bun.write(join(dir, "ok.toml"), `[server]\nhttp_port = 8080\n[cache]\nenabled = false\n`);
  const ok = await run(["check-config", join(dir, "ok.toml")]);
  expect(ok.code).toBe(0);
  expect(ok.stdout).toContain("valid");
  expect(ok.stdout).toContain("http :8080");
  expect(ok.stdout).toContain("dockerhub (docker.io)");
  await Bun.write(join(dir, "bad.toml"), `[server]\nhttp_port = "x"\n`);
  const bad = await run(["check-config", join(dir, "bad.toml")]);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain("server.http_port");
});

test("check-config: an image rule for a registry no upstream serves is refused with the fix; a single string is a list", async () => {
  const dir = mkdtempSync(join(tmpdir(), "docxy-check-"));
  await Bun.write(join(dir, "rules.toml"), `[server]\nbind = "127.0.0.1"\n[policy]\ndeny = "example.invalid/foo/*"\n`);
  const refused = await run(["check-config", join(dir, "rules.toml")]);
  expect(refused.code).toBe(2);
  expect(refused.stderr).toContain('policy: image pattern "example.invalid/foo/*" in deny can never match: no upstream serves the registry example.invalid (served: docker.io,');
  expect(refused.stderr).toContain("add an upstream for it");
  await Bun.write(join(dir, "served.toml"), `[server]\nbind = "127.0.0.1"\n[policy]\ndeny = "registry.gitlab.com/foo/*"\n`);
  const served = await run(["check-config", join(dir, "served.toml")]);
  expect([served.code, served.stderr]).toEqual([0, ""]);
  expect(served.stdout).toContain("gitlab (registry.gitlab.com)");
});

test("check-config refuses a pin that can never name an image, with the fix", async () => {
  const dir = mkdtempSync(join(tmpdir(), "docxy-check-"));
  await Bun.write(join(dir, "pins.toml"), `[cache]\npin = ["alpine:3.20", "index.docker.io/library/alpine"]\n`);
  const bad = await run(["check-config", join(dir, "pins.toml")]);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain('cache.pin[1]: "index.docker.io/library/alpine" can never name an image: Docker Hub\'s images are named "docker.io/…" here (write "docker.io/library/alpine")');
  // A pre-warm file's bad line is a warning with its number: a run would skip it and pull the rest.
  await Bun.write(join(dir, "list.txt"), "alpine:3.20\n# x\nalpine amd64\n");
  await Bun.write(join(dir, "prewarm.toml"), `[cache]\npin = ["alpine:3.20"]\n[prewarm]\nfile = "${join(dir, "list.txt")}"\ninterval = "6h"\n`);
  const warned = await run(["check-config", join(dir, "prewarm.toml")]);
  expect(warned.code).toBe(0);
  expect(warned.stdout).toContain(`  prewarm: ${join(dir, "list.txt")} (1 images, 1 bad lines), every 21600s\n`);
  expect(warned.stderr).toContain(`prewarm.file ${join(dir, "list.txt")} line 3 is skipped: platform "amd64" is not os/arch[/variant]`);
});

test("check-config: proxies are shown without their credentials, and an unsupported scheme is refused with the fix", async () => {
  const dir = mkdtempSync(join(tmpdir(), "docxy-check-"));
  const upstream = (proxy: string) => `[cache]\nenabled = false\n[[registry.upstreams]]\nname = "ghcr"\nproxy = "${proxy}"\n`;
  await Bun.write(join(dir, "socks.toml"), upstream("socks5h://corp:pw-socks-1@proxy.corp:1080"));
  const ok = await run(["check-config", join(dir, "socks.toml")], { HTTPS_PROXY: "http://corp:pw-env-2@egress.corp:3128" });
  expect(ok.code).toBe(0);
  expect(ok.stdout).toContain("ghcr (ghcr.io via socks5h://proxy.corp:1080)");
  expect(ok.stdout).toContain("HTTPS_PROXY: http://egress.corp:3128");
  expect(ok.stdout + ok.stderr).not.toContain("pw-");

  await Bun.write(join(dir, "socks4.toml"), upstream("socks4://corp:pw-socks-3@proxy.corp:1080"));
  const bad = await run(["check-config", join(dir, "socks4.toml")], { https_proxy: "ftp://corp:pw-env-4@egress.corp" });
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain('registry.upstreams[0].proxy: scheme "socks4" is not supported: use http://, https://, socks5://, socks5h://');
  expect(bad.stderr).toContain('environment https_proxy: scheme "ftp" is not supported');
  expect(bad.stdout + bad.stderr).not.toContain("pw-");
});

test("prewarm fills a running docxy's cache and reports each item (no TTY: one line per step)", async () => {
  const { app } = env.upstream.images;
  const result = await run(["prewarm", "acme/app:v1", "--url", env.docxy.url], { DOCXY_ADMIN_TOKEN: ADMIN });
  expect(result.code).toBe(0);
  const lines = result.stdout.trim().split("\n");
  expect(lines.filter((l) => l.startsWith("blob "))).toHaveLength(1 + app.manifests[0]!.layers.length);
  expect(lines.at(-1)).toMatch(/^acme\/app:v1: \d+ items, [\d.]+ MiB in the cache$/);
  const again = await run(["prewarm", "acme/app:v1", "--url", env.docxy.url], { DOCXY_ADMIN_TOKEN: ADMIN });
  expect(again.stdout.split("\n").filter((l) => l.startsWith("blob ")).every((l) => l.endsWith(" HIT"))).toBe(true);
});

test("prewarm without the admin token fails with the server's answer", async () => {
  const result = await run(["prewarm", "acme/app:v1", "--url", env.docxy.url]);
  expect(result.code).toBe(1);
  expect(result.stderr).toContain("401");
});

test("health: exit 0 and the report's status from a running docxy, by --url or by the configured port; 1 when nothing answers", async () => {
  const byUrl = await run(["health", "--url", `${env.docxy.url}/health`]);
  expect(byUrl.code).toBe(0);
  expect(byUrl.stdout).toMatch(/\/health: (ok|degraded)\n$/);
  // The image's HEALTHCHECK runs it without flags, next to the server's own environment.
  const port = new URL(env.docxy.url).port;
  const byConfig = await run(["health"], { DOCXY_SERVER_HTTP_PORT: port });
  expect(byConfig.code).toBe(0);
  expect(byConfig.stdout).toContain(`http://127.0.0.1:${port}/health: `);
  const nothing = await run(["health"], { DOCXY_SERVER_HTTP_PORT: String(await freePort()) });
  expect(nothing.code).toBe(1);
  expect(nothing.stderr).toContain("docxy health: http://127.0.0.1:");
  expect((await run(["health", "--bogus"])).code).toBe(2);
});
