/**
 * containerd 1.6 (Debian) pulling through docxy as a hosts.toml mirror of docker.io
 * (protocol.md §4.3, fact 16). Unlike Docker, containerd:
 * - never pings /v2/: it learns where to get a token from the first 401 on a manifest HEAD, so
 *   these pulls only work if docxy rewrites the challenge of manifest responses to its own realm;
 * - adds `?ns=docker.io` to every request it sends to a mirror;
 * - with credentials, POSTs the OAuth password grant to the realm first (fact 9).
 * It also pulls the ≥256 MiB layer, whose blob the upstream serves through a 307 to its CDN.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startProxiedUpstream, type ProxiedUpstream } from "../support/proxied-upstream";
import { startContainerd, containerdUnavailable, type Containerd } from "./support/containerd";
import { accessLines, accessLinesSince, generate204Status, sendfileTrips, summary } from "./support/docxy-log";

const unavailable = containerdUnavailable();
if (unavailable) console.warn(`SKIPPED tests/e2e/containerd.test.ts: ${unavailable}`);

/** Request lines and response statuses from `ctr --http-dump` (stderr), in the order printed. */
function httpDump(stderr: string): { requests: { method: string; target: string }[]; statuses: number[]; challenges: string[] } {
  return {
    requests: [...stderr.matchAll(/(HEAD|GET|POST) (\/[^ "]*) HTTP\/1\.1"/g)].map((m) => ({ method: m[1]!, target: m[2]! })),
    statuses: [...stderr.matchAll(/msg="HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1])),
    challenges: [...stderr.matchAll(/msg="Www-Authenticate: (.*)"$/gm)].map((m) => m[1]!.replaceAll('\\"', '"')),
  };
}

describe.skipIf(unavailable !== undefined)("containerd 1.6 (ctr) through docxy", () => {
  let env: ProxiedUpstream;
  let containerd: Containerd;

  beforeAll(async () => {
    env = await startProxiedUpstream({ bigLayer: true });
    containerd = await startContainerd({ mirrorHost: env.host });
  }, 300_000);

  afterAll(async () => {
    await containerd?.stop();
    await env?.stop();
  }, 60_000);

  /** `ctr images pull` through the hosts dir; returns ctr's stderr (the --http-dump, if asked). */
  async function pull(ref: string, ...flags: string[]): Promise<string> {
    const result = await containerd.ctr(["images", "pull", "--hosts-dir", containerd.hostsDir, ...flags, ref], 240_000);
    if (result.code !== 0) throw new Error(`ctr images pull ${ref} failed (exit ${result.code}):\n${result.stderr.slice(-4000)}`);
    return result.stderr;
  }

  /** The digest `ctr images ls` shows for a reference. */
  async function listedDigest(ref: string): Promise<string | undefined> {
    const lines = (await containerd.ctrOk(["images", "ls"])).split("\n");
    return lines.map((line) => line.split(/\s+/)).find((cols) => cols[0] === ref)?.[2];
  }

  test("ctr pulls docker.io/library/alpine via docxy, learning auth from a manifest 401 and sending ?ns=docker.io", async () => {
    const { alpine } = env.upstream.images;
    const mark = env.docxy.log().length;
    const dump = httpDump(await pull("docker.io/library/alpine:latest", "--http-dump"));
    expect(await listedDigest("docker.io/library/alpine:latest")).toBe(alpine.digest);

    // The very first exchange: HEAD the tag on docxy, 401 with docxy's own realm (not the upstream's).
    expect(dump.requests[0]).toEqual({ method: "HEAD", target: "/v2/library/alpine/manifests/latest?ns=docker.io" });
    expect(dump.statuses[0]).toBe(401);
    expect(dump.challenges[0]).toBe(
      `Bearer realm="${env.docxy.url}/auth/dockerhub/token",service="test-registry",scope="repository:library/alpine:pull"`,
    );
    // Every registry request to the mirror carried ns=docker.io (docxy strips it before going upstream),
    // and docxy's own log shows it served each one.
    const registryRequests = dump.requests.filter((r) => r.target.startsWith("/v2/"));
    expect(registryRequests.length).toBeGreaterThanOrEqual(5); // HEAD×2, index, manifest, config, layer
    for (const r of registryRequests) expect(r.target).toEndWith("?ns=docker.io");
    const lines = accessLinesSince(env, mark).filter((l) => l.path.startsWith("/v2/"));
    for (const line of lines) expect(line.query).toBe("ns=docker.io");
    for (const r of registryRequests.slice(1)) {
      const path = r.target.split("?")[0]!;
      expect(lines.some((l) => l.method === r.method && l.path === path && l.status < 300)).toBe(true);
    }
    const served = summary(lines);
    expect(served).toContain(`GET /v2/library/alpine/manifests/${alpine.digest} 200`);
  }, 120_000);

  test("ctr pulls docker.io/library/nginx (an OCI index) via docxy", async () => {
    const { nginx } = env.upstream.images;
    const mark = env.docxy.log().length;
    await pull("docker.io/library/nginx:latest");
    expect(await listedDigest("docker.io/library/nginx:latest")).toBe(nginx.digest);
    const served = summary(accessLinesSince(env, mark));
    expect(served).toContain("HEAD /v2/library/nginx/manifests/latest 200");
    expect(served).toContain(`GET /v2/library/nginx/manifests/${nginx.digest} 200`);
  }, 120_000);

  test("with --user, ctr gets a private image: the OAuth password POST goes through docxy to the upstream", async () => {
    const { secret } = env.upstream.images;
    const anonymous = await containerd.ctr(["images", "pull", "--hosts-dir", containerd.hostsDir, "docker.io/private/secret:latest"]);
    expect(anonymous.code).not.toBe(0);

    const tokenMark = env.upstream.tokenLog.length;
    await pull("docker.io/private/secret:latest", "--user", "alice:secret");
    expect(await listedDigest("docker.io/private/secret:latest")).toBe(secret.digest);
    const posts = env.upstream.tokenLog.slice(tokenMark).filter((r) => r.method === "POST");
    expect(posts.length).toBeGreaterThan(0);
    for (const post of posts) {
      expect(post.status).toBe(200);
      expect(post.form).toContainEqual(["grant_type", "password"]);
      expect(post.form).toContainEqual(["username", "alice"]);
      expect(post.form).toContainEqual(["client_id", "containerd-client"]);
      expect(post.form).toContainEqual(["scope", "repository:private/secret:pull"]);
    }
  }, 120_000);

  test("ctr pulls library/big (a ≥256 MiB layer, 307 to the CDN upstream) and the stored blob has the layer's digest", async () => {
    const big = env.upstream.images.big!;
    const layer = big.manifests[0]!.layers[0]!;
    expect(layer.size).toBeGreaterThanOrEqual(256 * 1024 * 1024);
    await pull("docker.io/library/big:latest");
    expect(await listedDigest("docker.io/library/big:latest")).toBe(big.digest);

    // containerd verifies digests itself; hash the content store's copy anyway, independently.
    const file = Bun.file(containerd.blobFile(layer.digest));
    expect(file.size).toBe(layer.size);
    const hasher = new Bun.CryptoHasher("sha256");
    for await (const chunk of file.stream()) hasher.update(chunk);
    expect(`sha256:${hasher.digest("hex")}`).toBe(layer.digest);

    // The upstream's blob GET answered 307; docxy followed it to the CDN without Authorization.
    const cdn = env.upstream.cdnLog.filter((r) => r.path.includes(layer.digest.slice("sha256:".length)));
    expect(cdn.length).toBeGreaterThan(0);
    expect(cdn.every((r) => !r.authorization)).toBe(true);
  }, 240_000);

  test("containerd never pinged /v2/, and docxy still answers /generate_204", async () => {
    expect(summary(accessLines(env.docxy.log())).filter((s) => s.startsWith("GET /v2/ "))).toEqual([]);
    expect(await generate204Status(env)).toBe(204);
  });
});

describe.skipIf(unavailable !== undefined)("containerd 1.6 (ctr) through docxy with a sendfile port", () => {
  let env: ProxiedUpstream;
  let containerd: Containerd;

  beforeAll(async () => {
    env = await startProxiedUpstream({}, "[server]\nsendfile_enabled = true\nsendfile_port = 0\n");
    containerd = await startContainerd({ mirrorHost: env.host });
  }, 300_000);

  afterAll(async () => {
    await containerd?.stop();
    await env?.stop();
  }, 60_000);

  test("a second pull, after containerd forgot the image, follows the 307s to the sendfile port: same digest, no CDN request", async () => {
    const ref = "docker.io/library/alpine:latest";
    const { alpine } = env.upstream.images;
    const pull = async () => {
      const result = await containerd.ctr(["images", "pull", "--hosts-dir", containerd.hostsDir, ref], 240_000);
      if (result.code !== 0) throw new Error(`ctr images pull failed (exit ${result.code}):\n${result.stderr.slice(-4000)}`);
    };
    await pull();
    await containerd.ctrOk(["images", "rm", "--sync", ref]); // --sync: its content is collected now
    const mark = env.docxy.log().length;
    const cdnBefore = env.upstream.cdnLog.length;
    await pull();

    const listed = (await containerd.ctrOk(["images", "ls"])).split("\n").map((l) => l.split(/\s+/)).find((cols) => cols[0] === ref)?.[2];
    expect(listed).toBe(alpine.digest);
    expect(env.upstream.cdnLog.length).toBe(cdnBefore);
    // The config and the layer of the platform containerd picked went through the sendfile port.
    const { redirected, sent } = sendfileTrips(accessLinesSince(env, mark));
    expect(sent.length).toBeGreaterThanOrEqual(2);
    expect(redirected).toEqual(sent);
  }, 240_000);
});
