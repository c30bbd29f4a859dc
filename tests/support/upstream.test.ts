// Proves the test upstream behaves like Docker Hub against the real docker-registry 2.8:
// token auth, scopes, CDN redirects, Accept negotiation, and a real client (skopeo).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { blobPath, MediaType, startUpstream, type TestImage, type Upstream } from "./upstream";

const HOOK_TIMEOUT = 60_000;
const sha256 = (data: ArrayBuffer | Uint8Array) => `sha256:${createHash("sha256").update(new Uint8Array(data)).digest("hex")}`;
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

let up: Upstream;
beforeAll(async () => {
  up = await startUpstream();
}, HOOK_TIMEOUT);
afterAll(async () => {
  await up?.stop();
}, HOOK_TIMEOUT);

/** GET /token the way clients do; returns the parsed JSON body and status. */
async function tokenGet(params: [string, string][], auth?: string) {
  const url = new URL(up.realm);
  for (const [k, v] of params) url.searchParams.append(k, v);
  const res = await fetch(url, { headers: auth ? { authorization: auth } : {} });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function pullToken(repo: string, auth?: string): Promise<string> {
  const { status, body } = await tokenGet([["service", up.service], ["scope", `repository:${repo}:pull`]], auth);
  expect(status).toBe(200);
  return body.token as string;
}

function getManifest(repo: string, ref: string, token: string, accept: string[]) {
  return fetch(`${up.registryUrl}/v2/${repo}/manifests/${ref}`, {
    headers: { authorization: `Bearer ${token}`, accept: accept.join(", ") },
  });
}

describe("registry with token auth", () => {
  test("/v2/ challenges with the realm and service", async () => {
    const res = await fetch(`${up.registryUrl}/v2/`);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe(`Bearer realm="${up.realm}",service="${up.service}"`);
  });

  test("anonymous token pulls the alpine manifest list byte for byte", async () => {
    const { status, body } = await tokenGet([["service", up.service], ["scope", "repository:library/alpine:pull"]]);
    expect(status).toBe(200);
    expect(body.token).toBe(body.access_token as string);
    expect(body.expires_in).toBe(300);
    expect(Number.isNaN(Date.parse(body.issued_at as string))).toBe(false);
    expect(body.refresh_token).toBeUndefined();

    const { alpine } = up.images;
    for (const tag of alpine.tags) {
      const res = await getManifest("library/alpine", tag, body.token as string, [MediaType.dockerList, MediaType.dockerManifest]);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe(MediaType.dockerList);
      const bytes = new Uint8Array(await res.arrayBuffer());
      expect(res.headers.get("docker-content-digest")).toBe(sha256(bytes));
      expect(sha256(bytes)).toBe(alpine.digest);
      expect(bytes).toEqual(alpine.bytes);
    }
    expect(alpine.manifests.map((m) => `${m.platform.architecture}/${m.mediaType}`)).toEqual([
      `amd64/${MediaType.dockerManifest}`,
      `arm64/${MediaType.dockerManifest}`,
    ]);
  });

  test("blob GET redirects to the CDN, which serves it and refuses Authorization", async () => {
    const token = await pullToken("acme/app");
    const layer = up.images.app.manifests[0]!.layers[1]!;
    const res = await fetch(`${up.registryUrl}/v2/acme/app/blobs/${layer.digest}`, {
      headers: { authorization: `Bearer ${token}` },
      redirect: "manual",
    });
    expect(res.status).toBe(307);
    const location = res.headers.get("location")!;
    const hex = layer.digest.slice("sha256:".length);
    expect(location).toBe(`${up.cdnUrl}/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`);

    const before = up.cdnLog.length;
    const blob = await fetch(location);
    expect(blob.status).toBe(200);
    expect(sha256(await blob.arrayBuffer())).toBe(layer.digest);

    const ranged = await fetch(location, { headers: { range: "bytes=10-19" } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get("content-range")).toBe(`bytes 10-19/${layer.size}`);
    expect((await ranged.arrayBuffer()).byteLength).toBe(10);

    const size = layer.size;
    for (const [range, want] of [
      [`bytes=${size - 5}-`, `bytes ${size - 5}-${size - 1}/${size}`],
      ["bytes=-7", `bytes ${size - 7}-${size - 1}/${size}`],
      [`bytes=0-${size + 100}`, `bytes 0-${size - 1}/${size}`],
    ] as const) {
      const res = await fetch(location, { headers: { range } });
      expect([res.status, res.headers.get("content-range")]).toEqual([206, want]);
      await res.arrayBuffer();
    }
    const beyond = await fetch(location, { headers: { range: `bytes=${size}-` } });
    expect([beyond.status, beyond.headers.get("content-range")]).toEqual([416, `bytes */${size}`]);
    const head = await fetch(location, { method: "HEAD" });
    expect([head.status, head.headers.get("content-length")]).toEqual([200, String(size)]);

    const withAuth = await fetch(location, { headers: { authorization: `Bearer ${token}` } });
    expect(withAuth.status).toBe(403);
    await withAuth.arrayBuffer();

    expect(up.cdnLog.slice(before).map((r) => [r.method, r.status, r.range ?? null, r.authorization])).toEqual([
      ["GET", 200, null, false],
      ["GET", 206, "bytes=10-19", false],
      ["GET", 206, `bytes=${size - 5}-`, false],
      ["GET", 206, "bytes=-7", false],
      ["GET", 206, `bytes=0-${size + 100}`, false],
      ["GET", 416, `bytes=${size}-`, false],
      ["HEAD", 200, null, false],
      ["GET", 403, null, true],
    ]);
    expect((await fetch(`${up.cdnUrl}/docker/registry/v2/blobs/sha256/00/${"0".repeat(64)}/data`)).status).toBe(404);
  });

  test("private/secret: anonymous gets insufficient_scope, alice gets the manifest", async () => {
    const anon = await pullToken("private/secret");
    const denied = await getManifest("private/secret", "latest", anon, [MediaType.ociManifest]);
    expect(denied.status).toBe(401);
    expect(denied.headers.get("www-authenticate")).toContain('error="insufficient_scope"');
    await denied.arrayBuffer();

    const wrong = await tokenGet([["service", up.service], ["scope", "repository:private/secret:pull"]], basic("alice", "nope"));
    expect(wrong).toEqual({ status: 401, body: { details: "incorrect username or password" } });

    for (const token of [await pullToken("private/secret", basic("alice", "secret")), await up.token("private/secret", "alice")]) {
      const res = await getManifest("private/secret", "latest", token, [MediaType.ociManifest]);
      expect(res.status).toBe(200);
      expect(res.headers.get("docker-content-digest")).toBe(up.images.secret.digest);
      expect(new Uint8Array(await res.arrayBuffer())).toEqual(up.images.secret.bytes);
    }
  });

  test("the OCI index needs an OCI Accept (distribution 2.8 404s it otherwise)", async () => {
    const token = await up.token("library/nginx");
    const oci = await getManifest("library/nginx", "latest", token, [MediaType.ociIndex, MediaType.ociManifest]);
    expect(oci.status).toBe(200);
    expect(oci.headers.get("content-type")).toBe(MediaType.ociIndex);
    expect(sha256(await oci.arrayBuffer())).toBe(up.images.nginx.digest);

    const docker = await getManifest("library/nginx", "latest", token, [MediaType.dockerList, MediaType.dockerManifest]);
    expect(docker.status).toBe(404);
    expect(await docker.text()).toContain("MANIFEST_UNKNOWN");
  });

  test("tags/list of library/manytags has 120 tags", async () => {
    const res = await fetch(`${up.registryUrl}/v2/library/manytags/tags/list`, {
      headers: { authorization: `Bearer ${await up.token("library/manytags")}` },
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { name: string; tags: string[] };
    expect(body.name).toBe("library/manytags");
    expect(body.tags).toHaveLength(120);
    expect(body.tags).toContain("t000");
    expect(body.tags).toContain("t119");
  });

  test("skopeo inspect --raw with alice's credentials", async () => {
    const before = up.tokenLog.length;
    const ref = `docker://${up.registryUrl.replace("http://", "")}/private/secret:latest`;
    const proc = Bun.spawn(["skopeo", "inspect", "--raw", "--tls-verify=false", "--creds", "alice:secret", ref], {
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).bytes(), new Response(proc.stderr).text(), proc.exited]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(sha256(stdout)).toBe(up.images.secret.digest);

    const asked = up.tokenLog.slice(before);
    expect(asked.length).toBeGreaterThan(0);
    for (const r of asked) {
      expect(r).toMatchObject({ method: "GET", authScheme: "Basic", user: "alice", status: 200 });
      expect(r.query).toContainEqual(["account", "alice"]);
      expect(r.query).toContainEqual(["service", up.service]);
    }
  }, 30_000);
});

describe("seeded images", () => {
  test("layers are gzip tars whose uncompressed sha256 is the config's diff_id", async () => {
    const images: TestImage[] = Object.values(up.images);
    expect(images.map((i) => i.repository).sort()).toEqual(["acme/app", "library/alpine", "library/manytags", "library/nginx", "private/secret"]);
    for (const image of images) {
      if (image.index) expect(sha256(image.index.bytes)).toBe(image.digest);
      for (const m of image.manifests) {
        expect(sha256(m.bytes)).toBe(m.digest);
        const config = JSON.parse(await Bun.file(blobPath(up.rootDir, m.config.digest)).text());
        expect(config).toMatchObject({ os: m.platform.os, architecture: m.platform.architecture, rootfs: { type: "layers" } });
        expect(config.rootfs.diff_ids).toEqual(m.layers.map((l) => l.diffId));
        for (const layer of m.layers) {
          const blob = await Bun.file(blobPath(up.rootDir, layer.digest)).bytes();
          expect([sha256(blob), blob.length]).toEqual([layer.digest, layer.size]);
          const tarBytes = gunzipSync(blob);
          expect(sha256(tarBytes)).toBe(layer.diffId);
          expect(tarBytes.subarray(257, 262).toString()).toBe("ustar");
        }
      }
    }
  });
});

describe("token server", () => {
  test("rejects a service it does not serve", async () => {
    expect((await tokenGet([["service", "registry.docker.io"]])).status).toBe(400);
  });

  test("docker login flow: offline_token=true gives a refresh token that works in a POST", async () => {
    const login = await tokenGet(
      [["account", "alice"], ["client_id", "docker"], ["offline_token", "true"], ["service", up.service]],
      basic("alice", "secret"),
    );
    expect(login.status).toBe(200);
    const refresh = login.body.refresh_token as string;
    expect(refresh).toBeString();

    const before = up.tokenLog.length;
    const form = new URLSearchParams({
      client_id: "docker",
      grant_type: "refresh_token",
      refresh_token: refresh,
      scope: "repository:private/secret:pull repository:library/alpine:pull,push",
      service: up.service,
    });
    const res = await fetch(up.realm, { method: "POST", body: form });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body.scope).toBe("repository:private/secret:pull repository:library/alpine:pull,push");
    expect(body.refresh_token).toBeUndefined(); // no access_type=offline
    const manifest = await getManifest("private/secret", "latest", body.access_token as string, [MediaType.ociManifest]);
    expect(manifest.status).toBe(200);
    await manifest.arrayBuffer();

    expect(up.tokenLog[before]).toEqual({
      method: "POST",
      path: "/token",
      query: [],
      authorization: false,
      form: [...form].map(([k, v]) => [k, k === "refresh_token" ? "***" : v]),
      status: 200,
      peer: "127.0.0.1",
    });
  });

  test("POST password grant: access_type=offline gives a refresh token; bad password is 401", async () => {
    const post = (fields: Record<string, string>) =>
      fetch(up.realm, {
        method: "POST",
        body: new URLSearchParams({ client_id: "containerd-client", service: up.service, scope: "repository:library/alpine:pull", ...fields }),
      });
    const ok = await post({ grant_type: "password", username: "alice", password: "secret", access_type: "offline" });
    expect(ok.status).toBe(200);
    expect(Object.keys((await ok.json()) as object).sort()).toEqual(["access_token", "expires_in", "issued_at", "refresh_token", "scope", "token"]);
    const bad = await post({ grant_type: "password", username: "alice", password: "wrong" });
    expect(bad.status).toBe(401);
    await bad.arrayBuffer();
    expect(up.tokenLog.at(-1)?.form).toContainEqual(["password", "***"]);
  });
});

describe("more than one upstream", () => {
  test("a second upstream has its own ports, root and logs", async () => {
    const other = await startUpstream({ service: "other-registry", users: { bob: "hunter2" } });
    try {
      expect(other.registryUrl).not.toBe(up.registryUrl);
      expect(other.rootDir).not.toBe(up.rootDir);
      const res = await fetch(`${other.registryUrl}/v2/`);
      expect(res.headers.get("www-authenticate")).toBe(`Bearer realm="${other.realm}",service="other-registry"`);
      const token = await other.token("private/secret", "bob");
      const manifest = await fetch(`${other.registryUrl}/v2/private/secret/manifests/latest`, {
        headers: { authorization: `Bearer ${token}`, accept: MediaType.ociManifest },
      });
      expect(manifest.headers.get("docker-content-digest")).toBe(up.images.secret.digest);
      expect(other.tokenLog).toEqual([]); // token() signs in-process
    } finally {
      await other.stop();
    }
    expect(existsSync(other.rootDir)).toBe(false);
  }, HOOK_TIMEOUT);
});

describe("bigLayer", () => {
  let big: Upstream | undefined;
  beforeAll(async () => {
    big = await startUpstream({ bigLayer: true });
  }, HOOK_TIMEOUT);
  afterAll(async () => {
    await big?.stop();
  }, HOOK_TIMEOUT);

  test("library/big has a >= 256 MiB layer that streams through the CDN intact", async () => {
    const image = big!.images.big!;
    const layer = image.manifests[0]!.layers[0]!;
    expect(layer.size).toBeGreaterThanOrEqual(256 * 1024 * 1024);
    // fetch follows the 307 itself and, the CDN being another origin, drops Authorization.
    const res = await fetch(`${big!.registryUrl}/v2/library/big/blobs/${layer.digest}`, {
      headers: { authorization: `Bearer ${await big!.token("library/big")}` },
    });
    expect(res.status).toBe(200);
    const hash = createHash("sha256");
    let size = 0;
    for await (const chunk of res.body!) {
      hash.update(chunk);
      size += chunk.length;
    }
    expect([`sha256:${hash.digest("hex")}`, size]).toEqual([layer.digest, layer.size]);
    expect(big!.cdnLog.map((r) => [r.status, r.authorization])).toEqual([[200, false]]);
  }, HOOK_TIMEOUT);
});
