/** The compiled binary as a user meets it: flags, exit codes, startup on built-in defaults. */
import { beforeAll, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DOCXY_BIN, ensureBinary, startDocxy } from "../support/docxy-process";
import { json } from "../support/proxied-upstream";

beforeAll(() => ensureBinary(), 120_000);

async function run(args: string[], env: Record<string, string> = {}, cwd?: string) {
  const child = Bun.spawn([DOCXY_BIN, ...args], { env, cwd, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { stdout, stderr, code };
}

test("--version works from a copy of the binary alone, with no Bun and no node_modules around", async () => {
  const dir = mkdtempSync(join(tmpdir(), "docxy-bare-"));
  copyFileSync(DOCXY_BIN, join(dir, "docxy"));
  const child = Bun.spawn([join(dir, "docxy"), "--version"], { cwd: dir, env: { PATH: "/nonexistent" }, stdout: "pipe" });
  expect(await new Response(child.stdout).text()).toMatch(/^docxy \d+\.\d+\.\d+\n$/);
  expect(await child.exited).toBe(0);
});

test("--help describes the flags; -V is --version", async () => {
  const help = await run(["--help"]);
  expect(help.code).toBe(0);
  for (const flag of ["--config", "--log-level", "--http-port", "DOCXY_SERVER_HTTP_PORT"]) expect(help.stdout).toContain(flag);
  expect((await run(["-V"])).stdout).toStartWith("docxy ");
});

test("an unknown flag or a missing value exits 2 with the usage", async () => {
  for (const args of [["--nope"], ["--config"], ["--http-port", "--bind"]]) {
    const result = await run(args);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("Usage: docxy");
  }
});

test("an invalid config exits 2 with one line per problem and starts nothing", async () => {
  const dir = mkdtempSync(join(tmpdir(), "docxy-badcfg-"));
  await Bun.write(join(dir, "c.toml"), `[server]\nhttp_port = 70000\n[registry]\nupstream_registry = "registry-1.docker.io"\n`);
  const result = await run(["-c", join(dir, "c.toml")]);
  expect(result.code).toBe(2);
  const lines = result.stderr.trim().split("\n");
  expect(lines).toHaveLength(1); // schema errors come first; the URL is checked once the types are right
  expect(lines[0]).toContain("server.http_port");
  await Bun.write(join(dir, "c.toml"), `[registry]\nupstream_registry = "registry-1.docker.io"\nauth_realm = "x"\n`);
  const semantic = await run(["-c", join(dir, "c.toml")]);
  expect(semantic.code).toBe(2);
  expect(semantic.stderr.trim().split("\n")).toEqual([
    expect.stringContaining("registry.upstream_registry: must be an http:// or https:// URL"),
    expect.stringContaining("registry.auth_realm: must be an http:// or https:// URL"),
  ]);
});

test("with no config at all it serves Docker Hub on built-in defaults", async () => {
  const docxy = await startDocxy({ env: { DOCXY_UPSTREAM_PING_TIMEOUT: "1" } });
  try {
    expect(docxy.log()).toContain('config="embedded defaults"');
    expect(docxy.log()).toContain("url=https://registry-1.docker.io");
    const health = await json(await fetch(`${docxy.url}/health`));
    expect(health).toMatchObject({ status: "degraded", version: expect.any(String) });
    expect(health.upstreams.map((u: { name: string }) => u.name)).toEqual(["dockerhub", "ghcr", "quay", "gcr", "k8s", "mcr", "ecr-public", "elastic", "gitlab"]);
    expect(health.upstreams[0]).toMatchObject({ url: "https://registry-1.docker.io", reachable: false }); // no internet here
    const head = await fetch(`${docxy.url}/health`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect((await fetch(`${docxy.url}/generate_204`)).status).toBe(204);
  } finally {
    await docxy.stop();
  }
});

test("the OpenAPI page is served offline and documents the operator routes, not the registry API", async () => {
  const docxy = await startDocxy();
  try {
    const page = await (await fetch(`${docxy.url}/docs`)).text();
    expect(page).toContain("/docs/assets/swagger-ui-bundle.js");
    expect(page).not.toMatch(/unpkg|jsdelivr|cdn\./);
    const js = await fetch(`${docxy.url}/docs/assets/swagger-ui-bundle.js`);
    expect(js.status).toBe(200);
    expect((await js.arrayBuffer()).byteLength).toBeGreaterThan(500_000);
    const spec = await json(await fetch(`${docxy.url}/docs/json`));
    const paths = Object.keys(spec.paths);
    expect(paths).toEqual(expect.arrayContaining(["/health", "/generate_204", "/metrics"]));
    expect(paths.filter((p) => p.startsWith("/v2") || p.startsWith("/auth") || p.startsWith("/docs"))).toEqual([]);
  } finally {
    await docxy.stop();
  }
});

test("SIGTERM stops it cleanly", async () => {
  const docxy = await startDocxy();
  await docxy.stop();
  expect(docxy.log()).toContain("msg=stopping signal=SIGTERM");
});
