/**
 * Two docxy in a chain, each with Wharf's plain config and nothing else: the
 * near one (an office or CI cache) has `upstream_registry = "<far docxy>"`,
 * the far one (on a VPS) `upstream_registry = "<registry>"`. The registry is
 * the real one of the suite, whose token service and CDN answer docxy only.
 * Neither docxy is told a token realm: each must learn it from its upstream's
 * challenge instead of keeping Docker Hub's built-in one (issue 14).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "../support/cache/harness";
import { startDocxy, type Docxy } from "../support/docxy-process";
import { basic, json, sha256 } from "../support/proxied-upstream";
import { skopeoCopy, skopeoCopyOk, skopeoOk } from "../support/skopeo";
import { startUpstream, type TestImage, type Upstream } from "../support/upstream";
import { accessLines, summary } from "./support/docxy-log";
import { dockerdUnavailable, startDockerd, type Dockerd } from "./support/dockerd";

const dockerUnavailable = dockerdUnavailable();
if (dockerUnavailable) console.warn(`SKIPPED docker login through both hops in tests/e2e/chain.test.ts: ${dockerUnavailable}`);

let registry: Upstream;
let far: Docxy;
let near: Docxy;
let nearHost: string;

beforeAll(async () => {
  registry = await startUpstream({ onlyThroughProxy: true });
  far = await startDocxy({ config: `[registry]\nupstream_registry = "${registry.registryUrl}"\n` });
  near = await startDocxy({ config: `[registry]\nupstream_registry = "${far.url}"\n` });
  nearHost = new URL(near.url).host;
}, 120_000);
afterAll(async () => {
  await near?.stop();
  await far?.stop();
  await registry?.stop();
});

/** What `skopeo copy dir:` writes for a single-manifest image: the manifest and every blob by hex digest. */
function expectedFiles(image: TestImage): Record<string, string> {
  const manifest = image.manifests[0]!;
  const blobs = [manifest.config, ...manifest.layers].map((d) => [d.digest.slice("sha256:".length), d.digest]);
  return { "manifest.json": manifest.digest, version: expect.any(String) as unknown as string, ...Object.fromEntries(blobs) };
}

/** The far docxy's GETs of manifests and blobs logged after `mark` characters of its log. */
const farContentGets = (mark: number) =>
  summary(accessLines(far.log().slice(mark)).filter((l) => l.method === "GET" && /\/(manifests|blobs)\//.test(l.path)));

describe("public images through both hops", () => {
  test("skopeo copies a single-manifest image and a multi-arch one byte for byte", async () => {
    expect(await skopeoCopyOk(nearHost, "acme/app:v1")).toEqual(expectedFiles(registry.images.app));
    const raw = await skopeoOk("inspect", "--raw", "--tls-verify=false", `docker://${nearHost}/library/alpine:latest`);
    expect(sha256(new TextEncoder().encode(raw))).toBe(registry.images.alpine.digest);
    const all = await skopeoCopyOk(nearHost, "library/alpine:latest", true);
    // `dir:` names the index manifest.json and each child <hex>.manifest.json
    expect(all["manifest.json"]).toBe(registry.images.alpine.digest);
    for (const child of registry.images.alpine.manifests) {
      expect(all[`${child.digest.slice("sha256:".length)}.manifest.json`]).toBe(child.digest);
      for (const d of [child.config, ...child.layers]) expect(all[d.digest.slice("sha256:".length)]).toBe(d.digest);
    }
  });

  test("the near hop's challenge names its own realm and the far hop's service, which the far hop learnt from the registry", async () => {
    const ping = await fetch(`${near.url}/v2/`);
    await ping.arrayBuffer();
    expect(ping.status).toBe(401);
    expect(ping.headers.get("www-authenticate")).toBe(`Bearer realm="${near.url}/auth/dockerhub/token",service="${registry.service}"`);
  });

  test("a second pull is served by the near hop's cache: X-Cache HIT and no manifest or blob GET reaches the far hop", async () => {
    const app = registry.images.app.manifests[0]!;
    const token = (await json(await fetch(`${near.url}/auth/token?scope=repository:acme/app:pull`))).token as string;
    const headers = { authorization: `Bearer ${token}`, accept: app.mediaType };
    // the first pulls fill the near cache (a tag is remembered per Accept, so both clients pull once)
    await skopeoCopyOk(nearHost, "acme/app:v1");
    await (await fetch(`${near.url}/v2/acme/app/manifests/v1`, { headers })).arrayBuffer();

    expect(farContentGets(0)).toContain(`GET /v2/acme/app/blobs/${app.layers[0]!.digest} 200`); // the far log does show such GETs

    const mark = far.log().length;
    expect(await skopeoCopyOk(nearHost, "acme/app:v1")).toEqual(expectedFiles(registry.images.app));
    expect(farContentGets(mark)).toEqual([]);
    const manifest = await fetch(`${near.url}/v2/acme/app/manifests/v1`, { headers });
    expect([manifest.status, manifest.headers.get("x-cache"), sha256(await manifest.arrayBuffer())]).toEqual([200, "HIT", app.digest]);
    const layer = await fetch(`${near.url}/v2/acme/app/blobs/${app.layers[0]!.digest}`, { headers });
    expect([layer.status, layer.headers.get("x-cache"), sha256(await layer.arrayBuffer())]).toEqual([200, "HIT", app.layers[0]!.digest]);
    expect(farContentGets(mark)).toEqual([]);
  });
});

describe("a private image needs the registry user's login through both hops", () => {
  const secret = () => registry.images.secret.manifests[0]!;
  const tokenFor = async (authorization?: string) => {
    const response = await fetch(`${near.url}/auth/token?service=${registry.service}&scope=repository:private/secret:pull`, {
      headers: authorization ? { authorization } : {},
    });
    return { status: response.status, token: (await json(response)).token as string | undefined };
  };

  test("near /auth/token with the user's password → far /auth/token → the registry's token service; the token pulls every byte", async () => {
    const tokenMark = registry.tokenLog.length;
    const { status, token } = await tokenFor(basic("alice", "secret"));
    expect(status).toBe(200);
    expect(registry.tokenLog.slice(tokenMark).some((r) => r.user === "alice" && r.status === 200)).toBe(true);

    const headers = { authorization: `Bearer ${token}`, accept: secret().mediaType };
    const manifest = await fetch(`${near.url}/v2/private/secret/manifests/latest`, { headers });
    expect([manifest.status, sha256(await manifest.arrayBuffer())]).toEqual([200, secret().digest]);
    for (const d of [secret().config, ...secret().layers]) {
      const blob = await fetch(`${near.url}/v2/private/secret/blobs/${d.digest}`, { headers });
      expect([blob.status, sha256(await blob.arrayBuffer())]).toEqual([200, d.digest]);
    }

    // The far hop logs an exchange when it ends, which can be after the near hop's client had every
    // byte: wait for those lines, so none of them lands after the mark below.
    const fetched = [secret().config, ...secret().layers].map((d) => `GET /v2/private/secret/blobs/${d.digest} 200`);
    await waitFor(() => fetched.every((line) => farContentGets(0).includes(line)), "the far hop logging the blob GETs");

    // cached now at the near hop: served from there, still only with a token for the user
    const mark = far.log().length;
    const again = await fetch(`${near.url}/v2/private/secret/manifests/latest`, { headers });
    expect([again.status, again.headers.get("x-cache"), sha256(await again.arrayBuffer())]).toEqual([200, "HIT", secret().digest]);
    expect(farContentGets(mark)).toEqual([]);
  });

  test("anonymously, or with a wrong password, the private image stays out of reach at the near hop, cached or not", async () => {
    expect((await tokenFor(basic("alice", "wrong"))).status).toBe(401);
    const anonymous = await tokenFor();
    const response = await fetch(`${near.url}/v2/private/secret/manifests/latest`, {
      headers: { authorization: `Bearer ${anonymous.token}`, accept: secret().mediaType },
    });
    expect(response.status).toBe(401);
    expect((await json(response)).errors[0].code).toBe("UNAUTHORIZED");
  });

  test("skopeo with --src-creds copies it; without credentials it fails", async () => {
    const dir = `/tmp/docxy-chain-${crypto.randomUUID()}`;
    await skopeoOk("copy", "--src-tls-verify=false", "--src-creds", "alice:secret", `docker://${nearHost}/private/secret:latest`, `dir:${dir}`);
    expect(sha256(await Bun.file(`${dir}/manifest.json`).arrayBuffer())).toBe(secret().digest);
    await Bun.$`rm -rf ${dir}`;
    expect((await skopeoCopy(nearHost, "private/secret:latest")).code).not.toBe(0);
  });
});

describe.skipIf(dockerUnavailable !== undefined)("docker login and pull by host through both hops", () => {
  // A near docxy of its own, so that its cache is cold and the pull really crosses both hops.
  let fresh: Docxy;
  let host: string;
  let dockerd: Dockerd;
  beforeAll(async () => {
    fresh = await startDocxy({ config: `[registry]\nupstream_registry = "${far.url}"\n` });
    host = new URL(fresh.url).host;
    dockerd = await startDockerd({ mirrors: [] });
  }, 180_000);
  afterAll(async () => {
    await dockerd?.stop();
    await fresh?.stop();
  }, 90_000);

  const login = (password: string) => dockerd.docker(["login", host, "-u", "alice", "--password-stdin"], { stdin: `${password}\n` });

  test("a wrong password fails the login; anonymously the private image cannot be pulled", async () => {
    const wrong = await login("wrong");
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toContain("incorrect username or password"); // the registry's own message, relayed by both hops
    expect((await dockerd.docker(["pull", `${host}/private/secret:latest`])).code).not.toBe(0);
  }, 120_000);

  test("docker login <near> with the registry user's password, then docker pull <near>/private/secret: near → far → registry", async () => {
    const { secret } = registry.images;
    const tokenMark = registry.tokenLog.length;
    const right = await login("secret");
    expect([right.code, right.stdout.includes("Login Succeeded")]).toEqual([0, true]);
    expect(registry.tokenLog.slice(tokenMark).some((r) => r.user === "alice" && r.status === 200)).toBe(true);
    // The registry's refresh_token came back through both hops, so the CLI saved an identity token for the near host.
    expect(JSON.parse(readFileSync(join(dockerd.configDir, "config.json"), "utf8")).auths[host].identitytoken).toBeString();

    const farMark = far.log().length;
    const pullMark = registry.tokenLog.length;
    await dockerd.dockerOk(["pull", `${host}/private/secret:latest`]);
    const [image] = JSON.parse(await dockerd.dockerOk(["image", "inspect", `${host}/private/secret:latest`]));
    expect(image.RepoDigests).toContain(`${host}/private/secret@${secret.digest}`);
    expect(image.Id).toBe(secret.manifests[0]!.config.digest);
    // The far hop was asked for the tag, and the registry's token service granted the user the pull.
    const tagLines = () => summary(accessLines(far.log().slice(farMark))).filter((l) => /^(GET|HEAD) \/v2\/private\/secret\/manifests\/latest 200$/.test(l));
    await waitFor(() => tagLines().length > 0, "the far hop logging the tag request"); // its log reaches us through a pipe
    // With that identity token the daemon sends the OAuth POST (grant_type=refresh_token), relayed by both hops.
    const refresh = registry.tokenLog.slice(pullMark).find((r) => r.method === "POST" && r.form?.some(([k, v]) => k === "grant_type" && v === "refresh_token"));
    expect(refresh?.status).toBe(200);
    expect(refresh?.form).toContainEqual(["scope", "repository:private/secret:pull"]);
  }, 120_000);
});
