/**
 * The binary, cache on, in front of an upstream that turned hostile: its
 * redirects point at a local file (Bun's fetch reads file: URLs) or at the
 * cloud metadata address, and its `/v2/` challenge names a file as token
 * realm. Nothing of the file may reach a client or the cache, each refusal
 * is registry JSON, and the process goes on serving.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { removeAtExit } from "../../support/cleanup";
import { sha256, startCachingDocxy, type CachingDocxy } from "../../support/cache/harness";

const SECRET = '[admin]\ntoken = "hostile-upstream-test-secret-8e1d"\n';
const dir = mkdtempSync(join(tmpdir(), "docxy-hostile-"));
removeAtExit(dir);
const secretFile = join(dir, "docxy.toml");
writeFileSync(secretFile, SECRET);
/** The file's digest: a pull by it would verify, so only the redirect policy stands between the file and the cache. */
const DIGEST = sha256(new TextEncoder().encode(SECRET));
const FILE = `file://${secretFile}`;
const METADATA = "http://169.254.169.254/latest/meta-data/iam/security-credentials/";

const hostile = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  fetch(request) {
    const { pathname } = new URL(request.url);
    if (pathname === "/v2/") return Response.json({}, { status: 401, headers: { "www-authenticate": `Bearer realm="${FILE}",service="hostile"` } });
    if (pathname === "/v2/acme/ok/tags/list") return Response.json({ name: "acme/ok", tags: ["v1"] });
    if (pathname.startsWith("/v2/acme/meta/")) return new Response(null, { status: 307, headers: { location: METADATA } });
    return new Response(null, { status: 307, headers: { location: FILE } });
  },
});

let docxy: CachingDocxy;
beforeAll(async () => {
  docxy = await startCachingDocxy(
    `[registry]\nbuiltin_upstreams = false\ndefault = "hostile"\n[[registry.upstreams]]\nname = "hostile"\nupstream_registry = "${hostile.url.origin}"\n[upstream]\nheader_timeout = 2\n`,
  );
}, 30_000);
afterAll(async () => {
  await docxy?.stop();
  hostile.stop(true);
});

async function expectRefused(path: string, target: string) {
  const response = await fetch(`${docxy.url}${path}`, { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });
  const body = await response.text();
  expect(body).not.toContain("hostile-upstream-test-secret");
  expect(response.status).toBe(502);
  expect(response.headers.get("content-type")).toContain("application/json");
  const error = JSON.parse(body).errors[0];
  expect(error.code).toBe("UNAVAILABLE");
  expect(error.message).toContain(`upstream redirect to ${target} refused`);
}

test.each(["/v2/acme/app/tags/list", "/v2/acme/app/manifests/v1", `/v2/acme/app/manifests/${DIGEST}`, `/v2/acme/app/blobs/${DIGEST}`])(
  "a 307 to file:// on %s is refused as registry JSON, the file never sent",
  async (path) => {
    await expectRefused(path, "file:");
  },
);

test.each(["/v2/acme/meta/tags/list", `/v2/acme/meta/blobs/${DIGEST}`])("a 307 to the metadata address on %s is refused, not fetched", async (path) => {
  await expectRefused(path, "http://169.254.169.254");
});

test("a token realm the upstream names as a file is never read: the client gets docxy's offline token", async () => {
  const response = await fetch(`${docxy.url}/auth/token?scope=repository:acme/app:pull`);
  const body = await response.text();
  expect(body).not.toContain("hostile-upstream-test-secret");
  expect(response.status).toBe(200);
  expect(JSON.parse(body).token).toBe("docxy-offline");
});

test("nothing reached the cache or the log, and the process still serves", async () => {
  const blobs = join(docxy.cacheDir, "blobs", "sha256");
  expect(readdirSync(blobs)).toEqual([]);
  expect(docxy.log()).not.toContain("hostile-upstream-test-secret");
  const ok = await fetch(`${docxy.url}/v2/acme/ok/tags/list`);
  expect(ok.status).toBe(200);
  expect(await ok.json()).toEqual({ name: "acme/ok", tags: ["v1"] });
});
