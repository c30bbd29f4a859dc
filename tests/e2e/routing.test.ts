/**
 * One docxy in front of two real registries at once: a Docker Hub stand-in and
 * a ghcr.io stand-in, each a distribution 2.8 with a token service of its own
 * (that answers docxy only). Both hold `acme/app:v1` with different content,
 * so the digest a client gets tells which upstream answered, in every routing
 * mode: containerd's ?ns=, the path prefix, the Host, the default.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startDocxy, type Docxy } from "../support/docxy-process";
import { buildVariantImage } from "../support/images";
import { json } from "../support/proxied-upstream";
import { pushRepo } from "../support/push";
import { rawRequest } from "../support/raw-http";
import { skopeo, skopeoOk } from "../support/skopeo";
import { startUpstream, upstreamEntryToml, type TestImage, type Upstream } from "../support/upstream";
import { containerdUnavailable, startContainerd, type Containerd } from "./support/containerd";
import { accessLines } from "./support/docxy-log";

const unavailable = containerdUnavailable();
if (unavailable) console.warn(`SKIPPED containerd cases of tests/e2e/routing.test.ts: ${unavailable}`);

let hub: Upstream;
let ghcr: Upstream;
let ghcrApp: TestImage;
let docxy: Docxy;
let port: number;
/** A server nobody listed: any request reaching it would be docxy proxying an unknown host. */
const outsider = { hits: 0 };
const evil = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => (outsider.hits++, new Response("{}")) });

beforeAll(async () => {
  [hub, ghcr] = await Promise.all([
    startUpstream({ onlyThroughProxy: true }),
    startUpstream({ onlyThroughProxy: true, service: "ghcr-test" }),
  ]);
  const variant = buildVariantImage("acme/app", "v1", "ghcr");
  ghcrApp = variant.image;
  await pushRepo(ghcr.registryUrl, variant.repo, { authorization: `Bearer ${await ghcr.token("repository:acme/app:pull,push", "alice")}` });
  // ghcr is the built-in upstream pointed at our stand-in; its realm and service are
  // discovered from its own /v2/ challenge. `localhost` stands for a DNS name like
  // ghcr.docxy.example.com that would select it by Host.
  docxy = await startDocxy({
    config: `${upstreamEntryToml(hub)}
[[registry.upstreams]]
name = "ghcr"
upstream_registry = "${ghcr.registryUrl}"
hosts = ["localhost"]
`,
  });
  port = Number(new URL(docxy.url).port);
}, 120_000);
afterAll(async () => {
  await docxy?.stop();
  await Promise.all([hub?.stop(), ghcr?.stop()]);
  evil.stop(true);
});

const rawManifest = (ref: string) => skopeoOk("inspect", "--raw", "--tls-verify=false", `docker://${ref}`);
const hubApp = () => new TextDecoder().decode(hub.images.app.bytes);
const ghcrManifest = () => new TextDecoder().decode(ghcrApp.bytes);

describe("skopeo in each routing mode", () => {
  test("default: no prefix, no matching Host → Docker Hub", async () => {
    expect(await rawManifest(`127.0.0.1:${port}/acme/app:v1`)).toBe(hubApp());
  });

  test("path prefix ghcr.io/ → ghcr, with a token from ghcr's own token service for the unprefixed name", async () => {
    ghcr.tokenLog.length = 0;
    expect(await rawManifest(`127.0.0.1:${port}/ghcr.io/acme/app:v1`)).toBe(ghcrManifest());
    const scopes = ghcr.tokenLog.flatMap((r) => r.query.filter(([k]) => k === "scope").map(([, v]) => v));
    expect(scopes).toContain("repository:acme/app:pull");
    expect(scopes.some((s) => s.includes("ghcr.io/"))).toBe(false);
  });

  test("path prefix docker.io/ → Docker Hub, with library/ for single names", async () => {
    expect(await rawManifest(`127.0.0.1:${port}/docker.io/acme/app:v1`)).toBe(hubApp());
    const nginx = JSON.parse(await rawManifest(`127.0.0.1:${port}/docker.io/nginx:latest`));
    expect(nginx.mediaType).toBe(hub.images.nginx.mediaType);
  });

  test("Host: a host listed in ghcr's `hosts` → ghcr", async () => {
    expect(await rawManifest(`localhost:${port}/acme/app:v1`)).toBe(ghcrManifest());
  });

  test("copy --all through the prefix gets every blob of ghcr's image", async () => {
    const dir = `/tmp/docxy-routing-${crypto.randomUUID()}`;
    await skopeoOk("copy", "--src-tls-verify=false", `docker://127.0.0.1:${port}/ghcr.io/acme/app:v1`, `dir:${dir}`);
    expect(await Bun.file(`${dir}/manifest.json`).text()).toBe(ghcrManifest());
    await Bun.$`rm -rf ${dir}`;
  });
});

describe("ns and refusals over plain HTTP", () => {
  test("?ns=ghcr.io picks ghcr and is echoed in OCI-Namespace; the 401 names ghcr's realm on docxy", async () => {
    const response = await fetch(`${docxy.url}/v2/acme/app/manifests/v1?ns=ghcr.io`, { method: "HEAD" });
    expect(response.status).toBe(401);
    expect(response.headers.get("oci-namespace")).toBe("ghcr.io");
    expect(response.headers.get("www-authenticate")).toBe(
      `Bearer realm="${docxy.url}/auth/ghcr/token",service="ghcr-test",scope="repository:acme/app:pull"`,
    );
  });

  test("a prefixed pull's challenge names the repository as the client does", async () => {
    const response = await fetch(`${docxy.url}/v2/ghcr.io/acme/app/manifests/v1`, { method: "HEAD" });
    expect(response.headers.get("www-authenticate")).toContain('scope="repository:ghcr.io/acme/app:pull"');
  });

  test.each([
    ["an unknown ns", `/v2/acme/app/manifests/v1?ns=evil.example.com`],
    ["an ns smuggling a host:port", `/v2/acme/app/manifests/v1?ns=127.0.0.1:${evil.port}`],
    ["an unknown prefix", `/v2/quay.example.com/acme/app/manifests/v1`],
    ["a prefix smuggling a host:port", `/v2/127.0.0.1:${evil.port}/acme/app/manifests/v1`],
    ["a disabled built-in", `/v2/nvcr.io/nvidia/cuda/manifests/latest`],
    ["a token for an unknown registry", `/auth/token?scope=repository:127.0.0.1:${evil.port}/x:pull`],
  ])("%s is NAME_UNKNOWN and nothing goes out", async (_label, path) => {
    const response = await fetch(`${docxy.url}${path}`);
    expect(response.status).toBe(404);
    expect((await json(response)).errors[0].code).toBe("NAME_UNKNOWN");
    expect(outsider.hits).toBe(0);
  });

  test("a Host that matches nothing goes to the default upstream, never to that host", async () => {
    const response = await rawRequest(`${docxy.url}/v2/acme/app/manifests/v1`, "HEAD", { host: `127.0.0.1:${evil.port}` });
    expect(response.status).toBe(401);
    expect(response.headers["www-authenticate"]).toContain("/auth/dockerhub/token");
    expect(outsider.hits).toBe(0);
  });

  test("/health reports both upstreams as reachable", async () => {
    const health = await json(await fetch(`${docxy.url}/health`));
    const byName = Object.fromEntries(health.upstreams.map((u: { name: string; reachable: boolean }) => [u.name, u.reachable]));
    expect(byName).toMatchObject({ dockerhub: true, ghcr: true, quay: false });
  });
});

describe.skipIf(unavailable !== undefined)("containerd with hosts.toml for docker.io and ghcr.io", () => {
  let containerd: Containerd;
  beforeAll(async () => {
    containerd = await startContainerd({ mirrorHost: `127.0.0.1:${port}`, registries: ["docker.io", "ghcr.io"] });
  }, 60_000);
  afterAll(async () => {
    await containerd?.stop();
  }, 30_000);

  const pulled = async (ref: string) => {
    const result = await containerd.ctr(["images", "pull", "--hosts-dir", containerd.hostsDir, ref], 120_000);
    if (result.code !== 0) throw new Error(`ctr pull ${ref}: ${result.stderr.slice(-2000)}`);
    const line = (await containerd.ctrOk(["images", "ls"])).split("\n").find((l) => l.startsWith(`${ref} `));
    return line?.split(/\s+/)[2];
  };

  test("ghcr.io/acme/app:v1 comes from ghcr (ns=ghcr.io), docker.io/acme/app:v1 from Docker Hub", async () => {
    const mark = docxy.log().length;
    expect(await pulled("ghcr.io/acme/app:v1")).toBe(ghcrApp.digest);
    expect(await pulled("docker.io/acme/app:v1")).toBe(hub.images.app.digest);
    const served = accessLines(docxy.log().slice(mark)).filter((l) => l.path === "/v2/acme/app/manifests/v1" && l.status === 200);
    expect(served.map((l) => l.query)).toContain("ns=ghcr.io");
    expect(served.map((l) => l.query)).toContain("ns=docker.io");
  }, 120_000);
});

test("a client that skips docxy cannot reach either upstream's token service (the premise of this suite)", async () => {
  const direct = await skopeo("inspect", "--raw", "--tls-verify=false", `docker://${new URL(ghcr.registryUrl).host}/acme/app:v1`);
  expect(direct.code).not.toBe(0);
  expect(direct.stderr).toContain("403");
});
