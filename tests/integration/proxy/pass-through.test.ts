/**
 * The pass-through against a real registry (distribution 2.8 with token auth
 * and blob redirects to a CDN that refuses Authorization), through the
 * compiled binary, with curl-level requests and with skopeo.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { basic, json, sha256, startProxiedUpstream, type ProxiedUpstream } from "../../support/proxied-upstream";
import { rawRequest } from "../../support/raw-http";
import { skopeo, skopeoOk } from "../../support/skopeo";
import { MediaType } from "../../support/upstream";

const ALL_MANIFESTS = [MediaType.ociIndex, MediaType.dockerList, MediaType.ociManifest, MediaType.dockerManifest].join(", ");

let env: ProxiedUpstream;
beforeAll(async () => {
  env = await startProxiedUpstream();
}, 120_000);
afterAll(async () => {
  await env?.stop();
});

/** A token from docxy's own token endpoint, as a client would get it. */
async function token(scope: string, authorization?: string): Promise<string> {
  const response = await fetch(`${env.docxy.url}/auth/dockerhub/token?scope=${encodeURIComponent(scope)}`, {
    headers: authorization ? { authorization } : {},
  });
  expect(response.status).toBe(200);
  return (await json(response)).token;
}

describe("challenges", () => {
  test("/v2/ answers 401 with our own realm, the upstream's service and the API version header", async () => {
    for (const method of ["GET", "HEAD"]) {
      const response = await fetch(`${env.docxy.url}/v2/`, { method });
      expect(response.status).toBe(401);
      expect(response.headers.get("www-authenticate")).toBe(`Bearer realm="${env.docxy.url}/auth/dockerhub/token",service="test-registry"`);
      expect(response.headers.get("docker-distribution-api-version")).toBe("registry/2.0");
    }
  });

  test("a manifest 401 is rewritten too, keeping scope (containerd learns auth here)", async () => {
    const response = await fetch(`${env.docxy.url}/v2/library/alpine/manifests/latest`, { method: "HEAD" });
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toBe(
      `Bearer realm="${env.docxy.url}/auth/dockerhub/token",service="test-registry",scope="repository:library/alpine:pull"`,
    );
  });

  test("a token for another repository gets insufficient_scope with our realm", async () => {
    const wrong = await token("repository:acme/app:pull");
    const response = await fetch(`${env.docxy.url}/v2/library/alpine/manifests/latest`, { headers: { authorization: `Bearer ${wrong}` } });
    expect(response.status).toBe(401);
    const challenge = response.headers.get("www-authenticate")!;
    expect(challenge).toContain(`realm="${env.docxy.url}/auth/dockerhub/token"`);
    expect(challenge).toContain('error="insufficient_scope"');
    expect(challenge).not.toContain(env.upstream.realm);
  });

  test("with a valid token, /v2/ is the upstream's 200", async () => {
    const response = await fetch(`${env.docxy.url}/v2/`, { headers: { authorization: `Bearer ${await token("repository:library/alpine:pull")}` } });
    expect(response.status).toBe(200);
  });

  test("the realm never follows a forged Host or X-Forwarded-Host (CVE-2025-63761)", async () => {
    const response = await rawRequest(`${env.docxy.url}/v2/`, "GET", { host: "evil.test", "x-forwarded-host": "evil.test" });
    expect(response.status).toBe(401);
    expect(response.headers["www-authenticate"]).not.toContain("evil.test");
  });
});

describe("manifests", () => {
  test("GET returns the exact upstream bytes with digest, type and length; single names get library/", async () => {
    const { alpine } = env.upstream.images;
    const bearer = `Bearer ${await token("repository:alpine:pull")}`;
    for (const name of ["library/alpine", "alpine"]) {
      const response = await fetch(`${env.docxy.url}/v2/${name}/manifests/latest`, { headers: { authorization: bearer, accept: ALL_MANIFESTS } });
      expect(response.status).toBe(200);
      const bytes = new Uint8Array(await response.arrayBuffer());
      expect(sha256(bytes)).toBe(alpine.digest);
      expect(bytes).toEqual(alpine.bytes);
      expect(response.headers.get("docker-content-digest")).toBe(alpine.digest);
      expect(response.headers.get("content-type")).toBe(MediaType.dockerList);
      expect(response.headers.get("content-length")).toBe(String(alpine.bytes.length));
    }
  });

  test("HEAD carries digest, type and the exact length, and stays a HEAD upstream (no Docker Hub quota)", async () => {
    const { nginx } = env.upstream.images;
    const bearer = `Bearer ${await token("repository:library/nginx:pull")}`;
    const response = await rawRequest(`${env.docxy.url}/v2/library/nginx/manifests/latest`, "HEAD", { authorization: bearer, accept: ALL_MANIFESTS });
    expect(response.status).toBe(200);
    expect(response.headers["content-length"]).toBe(String(nginx.bytes.length));
    expect(response.headers["docker-content-digest"]).toBe(nginx.digest);
    expect(response.headers["content-type"]).toBe(MediaType.ociIndex);
    expect(response.body.length).toBe(0);
    expect(readFileSync(env.upstream.registryLog, "utf8")).toMatch(/"HEAD \/v2\/library\/nginx\/manifests\/latest HTTP/);
  });

  test("Accept is forwarded: without OCI types the registry refuses the index, as it would directly", async () => {
    const bearer = `Bearer ${await token("repository:library/nginx:pull")}`;
    const response = await fetch(`${env.docxy.url}/v2/library/nginx/manifests/latest`, { headers: { authorization: bearer, accept: MediaType.dockerManifest } });
    expect(response.status).toBe(404);
    expect((await json(response)).errors[0].code).toBe("MANIFEST_UNKNOWN");
  });
});

describe("blobs", () => {
  const layer = () => env.upstream.images.app.manifests[0]!.layers[0]!;

  test("GET follows the CDN redirect server-side without Authorization, with exact Content-Length", async () => {
    const bearer = `Bearer ${await token("repository:acme/app:pull")}`;
    env.upstream.cdnLog.length = 0;
    const response = await rawRequest(`${env.docxy.url}/v2/acme/app/blobs/${layer().digest}`, "GET", { authorization: bearer });
    expect(response.status).toBe(200);
    expect(response.headers["location"]).toBeUndefined();
    expect(response.headers["transfer-encoding"]).toBeUndefined();
    expect(response.headers["content-length"]).toBe(String(layer().size));
    expect(response.headers["docker-content-digest"]).toBe(layer().digest);
    expect(sha256(response.body)).toBe(layer().digest);
    expect(env.upstream.cdnLog).toHaveLength(1);
    expect(env.upstream.cdnLog[0]).toMatchObject({ method: "GET", authorization: false, status: 200 });
  });

  test("HEAD has the size and digest and downloads nothing", async () => {
    const bearer = `Bearer ${await token("repository:acme/app:pull")}`;
    const response = await rawRequest(`${env.docxy.url}/v2/acme/app/blobs/${layer().digest}`, "HEAD", { authorization: bearer });
    expect(response.status).toBe(200);
    expect(response.headers["content-length"]).toBe(String(layer().size));
    expect(response.headers["docker-content-digest"]).toBe(layer().digest);
    expect(response.body.length).toBe(0);
  });

  test("Range gets a 206 with Content-Range and exactly those bytes (Docker resumes this way)", async () => {
    const bearer = `Bearer ${await token("repository:acme/app:pull")}`;
    const whole = new Uint8Array(await (await fetch(`${env.docxy.url}/v2/acme/app/blobs/${layer().digest}`, { headers: { authorization: bearer } })).arrayBuffer());
    const response = await rawRequest(`${env.docxy.url}/v2/acme/app/blobs/${layer().digest}`, "GET", { authorization: bearer, range: "bytes=10-99" });
    expect(response.status).toBe(206);
    expect(response.headers["content-range"]).toBe(`bytes 10-99/${layer().size}`);
    expect(response.headers["content-length"]).toBe("90");
    expect(new Uint8Array(response.body)).toEqual(whole.subarray(10, 100));
  });

  test("an unknown blob is the registry's BLOB_UNKNOWN", async () => {
    const bearer = `Bearer ${await token("repository:acme/app:pull")}`;
    const response = await fetch(`${env.docxy.url}/v2/acme/app/blobs/sha256:${"0".repeat(64)}`, { headers: { authorization: bearer } });
    expect(response.status).toBe(404);
    expect((await json(response)).errors[0].code).toBe("BLOB_UNKNOWN");
  });
});

describe("tags and private repositories", () => {
  test("tags/list passes through with its query", async () => {
    const bearer = `Bearer ${await token("repository:library/manytags:pull")}`;
    const response = await fetch(`${env.docxy.url}/v2/library/manytags/tags/list?n=1000`, { headers: { authorization: bearer } });
    expect(response.status).toBe(200);
    const body = await json(response);
    expect(body.name).toBe("library/manytags");
    expect(body.tags).toHaveLength(120);
    expect(body.tags).toContain("t119");
  });

  test("a private repository is denied anonymously and served with the user's credentials", async () => {
    const { secret } = env.upstream.images;
    const anonymous = await token("repository:private/secret:pull");
    const denied = await fetch(`${env.docxy.url}/v2/private/secret/manifests/latest`, { headers: { authorization: `Bearer ${anonymous}`, accept: ALL_MANIFESTS } });
    expect(denied.status).toBe(401);
    const bad = await fetch(`${env.docxy.url}/auth/dockerhub/token?scope=repository:private/secret:pull`, { headers: { authorization: basic("alice", "wrong") } });
    expect(bad.status).toBe(401);
    const granted = await token("repository:private/secret:pull", basic("alice", "secret"));
    const allowed = await fetch(`${env.docxy.url}/v2/private/secret/manifests/latest`, { headers: { authorization: `Bearer ${granted}`, accept: ALL_MANIFESTS } });
    expect(allowed.status).toBe(200);
    expect(sha256(await allowed.arrayBuffer())).toBe(secret.digest);
  });
});

describe("skopeo through docxy", () => {
  const copyAll = async (ref: string, ...extra: string[]) => {
    const dir = join(tmpdir(), `docxy-copy-${crypto.randomUUID()}`);
    await skopeoOk("copy", "--all", "--src-tls-verify=false", ...extra, `docker://${env.host}/${ref}`, `dir:${dir}`);
    return dir;
  };

  /** `dir:` keeps manifests byte for byte; every blob file must hash to its name. */
  const expectCopied = (dir: string, digest: string) => {
    try {
      expect(sha256(readFileSync(join(dir, "manifest.json")))).toBe(digest);
      for (const file of readdirSync(dir).filter((f) => /^[0-9a-f]{64}$/.test(f))) {
        expect(sha256(readFileSync(join(dir, file)))).toBe(`sha256:${file}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  test("copy --all of a Docker manifest list matches the upstream digests", async () => {
    const { alpine } = env.upstream.images;
    const dir = await copyAll("library/alpine:3.20");
    const copied = readdirSync(dir);
    for (const m of alpine.manifests) for (const l of m.layers) expect(copied).toContain(l.digest.slice(7));
    expectCopied(dir, alpine.digest);
  });

  test("copy --all of an OCI index (short name: library/ added by docxy)", async () => {
    expectCopied(await copyAll("nginx:latest"), env.upstream.images.nginx.digest);
  });

  test("a private image with --creds, and not without", async () => {
    const refused = await skopeo("inspect", "--raw", "--tls-verify=false", `docker://${env.host}/private/secret:latest`);
    expect(refused.code).not.toBe(0);
    expectCopied(await copyAll("private/secret:latest", "--src-creds", "alice:secret"), env.upstream.images.secret.digest);
  });

  test("inspect --raw and list-tags", async () => {
    const raw = await skopeoOk("inspect", "--raw", "--tls-verify=false", `docker://${env.host}/acme/app:v1`);
    expect(sha256(new TextEncoder().encode(raw))).toBe(env.upstream.images.app.digest);
    const tags = JSON.parse(await skopeoOk("list-tags", "--tls-verify=false", `docker://${env.host}/library/manytags`));
    expect(tags.Tags).toHaveLength(120);
  });

  test("the TLS probes skopeo sent to the plain-HTTP port left it serving", async () => {
    expect((await fetch(`${env.docxy.url}/generate_204`)).status).toBe(204);
  });
});

test("no password, Basic credential or token ever reaches docxy's log", async () => {
  const granted = await token("repository:private/secret:pull", basic("alice", "secret"));
  await fetch(`${env.docxy.url}/v2/private/secret/manifests/latest`, { headers: { authorization: `Bearer ${granted}` } });
  const log = env.docxy.log();
  expect(log).toContain("/v2/private/secret/manifests/latest"); // the access log is there…
  for (const secret of ["secret@", ":secret", basic("alice", "secret").slice(6), granted, granted.slice(0, 40)]) {
    expect(log).not.toContain(secret); // …but never a credential
  }
});
