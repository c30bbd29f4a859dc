/**
 * Who may use docxy, what they may pull and how much, through the binary in
 * front of the real upstream. The rules themselves are unit-tested in
 * tests/policy; here: that every route and routing mode applies them.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startDocxy, type Docxy } from "../../support/docxy-process";
import { json, sha256 } from "../../support/proxied-upstream";
import { rawRequest } from "../../support/raw-http";
import { registryToml, startUpstream, type Upstream } from "../../support/upstream";

let upstream: Upstream;
const dir = mkdtempSync(join(tmpdir(), "docxy-guard-"));
const started: Docxy[] = [];

beforeAll(async () => {
  upstream = await startUpstream({ onlyThroughProxy: true });
}, 60_000);
afterAll(async () => {
  await Promise.all(started.map((d) => d.stop()));
  await upstream?.stop();
});

async function docxyWith(extra: string): Promise<Docxy> {
  const docxy = await startDocxy({
    config: `${registryToml(upstream)}${extra}`,
  });
  started.push(docxy);
  return docxy;
}

/** A manifest fetched the way a client would: token from docxy's endpoint, then the manifest. */
async function pull(docxy: Docxy, path: string, scope: string, headers: Record<string, string> = {}): Promise<Response> {
  const tokenResponse = await fetch(`${docxy.url}/auth/token?scope=${encodeURIComponent(`repository:${scope}:pull`)}`, { headers });
  const token = tokenResponse.ok ? (await json(tokenResponse)).token : "";
  return fetch(`${docxy.url}${path}`, { headers: { ...headers, authorization: `Bearer ${token}`, accept: "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json" } });
}

describe("network policy", () => {
  test("a denied address gets DENIED on registry and token routes; /health stays reachable", async () => {
    const docxy = await docxyWith(`[access]\ndeny = ["127.0.0.0/8"]\n`);
    for (const path of ["/v2/", "/v2/acme/app/manifests/v1", "/auth/token?scope=repository:acme/app:pull"]) {
      const response = await fetch(`${docxy.url}${path}`);
      expect(response.status).toBe(403);
      expect((await json(response)).errors[0].code).toBe("DENIED");
    }
    expect((await fetch(`${docxy.url}/health`)).status).toBe(200);
  });

  test("X-Forwarded-For counts only from a trusted proxy", async () => {
    const trusting = await docxyWith(`[access]\nallow = ["10.0.0.0/8"]\ntrusted_proxies = ["127.0.0.1"]\n`);
    expect((await rawRequest(`${trusting.url}/v2/`, "GET", { "x-forwarded-for": "10.1.2.3" })).status).toBe(401);
    expect((await rawRequest(`${trusting.url}/v2/`, "GET", { "x-forwarded-for": "192.0.2.9" })).status).toBe(403);
    expect(trusting.log()).toContain('"client":"10.1.2.3"');
    const untrusting = await docxyWith(`[access]\nallow = ["10.0.0.0/8"]\n`);
    expect((await rawRequest(`${untrusting.url}/v2/`, "GET", { "x-forwarded-for": "10.1.2.3" })).status).toBe(403); // spoofed: ignored
  });
});

describe("image policy written the way docker pull names images", () => {
  let docxy: Docxy;
  beforeAll(async () => {
    // Issue 19: this rule was accepted and blocked nothing (rules had to say docker.io/library/…).
    docxy = await docxyWith(`[policy]\ndeny = ["library/nginx", "alpine"]\n`);
  });

  test("nginx and library/nginx mean docker.io/library/nginx: both denied rules hold, other images pull", async () => {
    for (const [path, scope] of [
      ["/v2/library/nginx/manifests/latest", "library/nginx"],
      ["/v2/nginx/manifests/latest", "nginx"],
      ["/v2/library/alpine/manifests/3.20", "library/alpine"],
    ] as const) {
      const response = await pull(docxy, path, scope);
      expect([path, response.status]).toEqual([path, 403]);
      expect((await json(response)).errors[0].code).toBe("DENIED");
    }
    expect((await pull(docxy, "/v2/library/manytags/manifests/t001", "library/manytags")).status).toBe(200);
  });
});

describe("image policy", () => {
  let docxy: Docxy;
  beforeAll(async () => {
    docxy = await docxyWith(`[policy]\nallow = ["docker.io/library/*"]\nallow_tags = ["3.*", "latest"]\ndeny = ["docker.io/library/nginx"]\n`);
  });

  test("an allowed image pulls; others are DENIED with a readable message, in every routing mode", async () => {
    expect((await pull(docxy, "/v2/library/alpine/manifests/3.20", "library/alpine")).status).toBe(200);
    for (const [path, scope] of [
      ["/v2/acme/app/manifests/v1", "acme/app"],
      ["/v2/docker.io/acme/app/manifests/v1", "docker.io/acme/app"],
      ["/v2/acme/app/manifests/v1?ns=docker.io", "acme/app"],
      ["/v2/nginx/manifests/latest", "nginx"],
    ] as const) {
      const response = await pull(docxy, path, scope);
      expect(response.status).toBe(403);
      const error = (await json(response)).errors[0];
      expect(error.code).toBe("DENIED");
      expect(error.message).toContain("docker.io/");
    }
  });

  test("allow_tags limits pulls by tag; a digest of an allowed repository still pulls", async () => {
    expect((await pull(docxy, "/v2/library/manytags/manifests/t001", "library/manytags")).status).toBe(403);
    const { manytags } = upstream.images;
    const byDigest = await pull(docxy, `/v2/library/manytags/manifests/${manytags.digest}`, "library/manytags");
    expect(byDigest.status).toBe(200);
    expect(sha256(await byDigest.arrayBuffer())).toBe(manytags.digest);
  });

  test("a policy file is reloaded when it changes", async () => {
    const file = join(dir, "policy.toml");
    writeFileSync(file, `deny = ["docker.io/acme/*"]\n`);
    const reloading = await docxyWith(`[policy]\nfile = "${file}"\n`);
    expect((await pull(reloading, "/v2/acme/app/manifests/v1", "acme/app")).status).toBe(403);
    writeFileSync(`${file}.new`, `deny = []\n`);
    renameSync(`${file}.new`, file); // write and rename, as the README advises
    let status = 0;
    for (let i = 0; i < 100 && status !== 200; i++) {
      status = (await pull(reloading, "/v2/acme/app/manifests/v1", "acme/app")).status;
      if (status !== 200) await Bun.sleep(50);
    }
    expect(status).toBe(200);
  });
});

test("the per-address request limit answers 429 TOOMANYREQUESTS with Retry-After", async () => {
  const docxy = await docxyWith(`[limits]\nrequests_per_minute = 5\n`);
  const statuses: number[] = [];
  let last: Response | undefined;
  for (let i = 0; i < 7; i++) {
    last = await fetch(`${docxy.url}/v2/`);
    statuses.push(last.status);
  }
  expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429]);
  expect(Number(last!.headers.get("retry-after"))).toBeGreaterThan(0);
  expect((await json(last!)).errors[0].code).toBe("TOOMANYREQUESTS");
});

test("a bandwidth-limited blob still arrives whole and verified", async () => {
  const docxy = await docxyWith(`[limits]\nbytes_per_second = "10MB"\n`);
  const layer = upstream.images.app.manifests[0]!.layers[0]!;
  const tokenResponse = await fetch(`${docxy.url}/auth/token?scope=repository:acme/app:pull`);
  const { token } = await json(tokenResponse);
  const blob = await fetch(`${docxy.url}/v2/acme/app/blobs/${layer.digest}`, { headers: { authorization: `Bearer ${token}` } });
  expect(blob.headers.get("content-length")).toBe(String(layer.size));
  expect(sha256(await blob.arrayBuffer())).toBe(layer.digest);
});

test("a bad CIDR or image rule is a configuration error", async () => {
  const child = Bun.spawn([(await import("../../support/docxy-process")).DOCXY_BIN, "--http-port", "0"], {
    env: { DOCXY_ACCESS_DENY: "10.0.0.0/33" },
    stderr: "pipe",
  });
  expect(await child.exited).toBe(2);
  expect(await new Response(child.stderr).text()).toContain("access:");
});
