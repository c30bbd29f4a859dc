/**
 * Docker (Debian docker.io 20.10, classic image store) pulling through docxy, for real: a private
 * dockerd whose daemon.json lists docxy in `registry-mirrors` (protocol.md §4.1, fact 14), and
 * direct pulls and logins by docxy's host:port. docker.io itself is unreachable from here, so a
 * mirror pull that succeeds can only have come through docxy (Docker falls back to
 * registry-1.docker.io on any mirror error, which would fail).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startProxiedUpstream, type ProxiedUpstream } from "../support/proxied-upstream";
import { accessLinesSince, generate204Status, sendfileTrips, summary } from "./support/docxy-log";
import { dockerdUnavailable, startDockerd, type Dockerd } from "./support/dockerd";
import { hostManifest } from "./support/images";

const unavailable = dockerdUnavailable();
if (unavailable) console.warn(`SKIPPED tests/e2e/docker.test.ts: ${unavailable}`);

describe.skipIf(unavailable !== undefined)("docker 20.10 through docxy", () => {
  let env: ProxiedUpstream;
  let dockerd: Dockerd;

  beforeAll(async () => {
    env = await startProxiedUpstream();
    // A bare http:// root is a valid mirror without insecure-registries (protocol.md §4.1).
    dockerd = await startDockerd({ mirrors: [`http://${env.host}`] });
  }, 180_000);

  afterAll(async () => {
    await dockerd?.stop();
    await env?.stop();
  }, 90_000);

  /** RepoDigests and Id of a local image. */
  async function inspect(ref: string): Promise<{ repoDigests: string[]; id: string }> {
    const [image] = JSON.parse(await dockerd.dockerOk(["image", "inspect", ref]));
    return { repoDigests: image.RepoDigests, id: image.Id };
  }

  test("the daemon uses docxy as its registry mirror", async () => {
    const mirrors = JSON.parse(await dockerd.dockerOk(["info", "--format", "{{json .RegistryConfig.Mirrors}}"]));
    expect(mirrors).toEqual([`http://${env.host}/`]);
  });

  test("docker pull alpine (a manifest list) goes through the mirror and records the list digest", async () => {
    const { alpine } = env.upstream.images;
    const mark = env.docxy.log().length;
    await dockerd.dockerOk(["pull", "alpine"]);
    const image = await inspect("alpine");
    expect(image.repoDigests).toContain(`alpine@${alpine.digest}`);
    expect(image.id).toBe(hostManifest(alpine).config.digest); // the host's child, not arm64
    // Docker sends library/ for one-component names and no ?ns= (fact 14): HEAD the tag, GET by digest.
    const seen = summary(accessLinesSince(env, mark));
    expect(seen).toContain("HEAD /v2/library/alpine/manifests/latest 200");
    expect(seen).toContain(`GET /v2/library/alpine/manifests/${alpine.digest} 200`);
    expect(seen).toContain(`GET /v2/library/alpine/blobs/${hostManifest(alpine).layers[0]!.digest} 200`);
  }, 120_000);

  test("docker pull acme/app:v1 (schema2) goes through the mirror", async () => {
    const { app } = env.upstream.images;
    const mark = env.docxy.log().length;
    await dockerd.dockerOk(["pull", "acme/app:v1"]);
    const image = await inspect("acme/app:v1");
    expect(image.repoDigests).toContain(`acme/app@${app.digest}`);
    expect(image.id).toBe(app.manifests[0]!.config.digest);
    expect(summary(accessLinesSince(env, mark))).toContain("HEAD /v2/acme/app/manifests/v1 200");
  }, 120_000);

  test("a second pull is served by docxy's cache: no blob and no manifest GET reaches the upstream", async () => {
    const { app } = env.upstream.images;
    await dockerd.dockerOk(["rmi", "acme/app:v1"]);
    const cdnBefore = env.upstream.cdnLog.length;
    const registryBefore = readFileSync(env.upstream.registryLog, "utf8").length;
    const mark = env.docxy.log().length;
    await dockerd.dockerOk(["pull", "acme/app:v1"]);
    expect((await inspect("acme/app:v1")).repoDigests).toContain(`acme/app@${app.digest}`);
    // docxy served every blob itself; the registry saw at most the /v2/ ping Docker opens with
    // (forwarded so that tokens are really checked) and HEADs of the tag (free on Docker Hub).
    const blobs = accessLinesSince(env, mark).filter((l) => l.path.includes("/blobs/"));
    expect(blobs.length).toBeGreaterThan(0);
    expect(env.upstream.cdnLog.length).toBe(cdnBefore);
    const upstreamLines = readFileSync(env.upstream.registryLog, "utf8").slice(registryBefore).match(/"(GET|HEAD) \/v2\/[^"]*"/g) ?? [];
    expect(upstreamLines.filter((l) => !l.startsWith('"HEAD /v2/acme/app/manifests/') && !l.startsWith('"GET /v2/ '))).toEqual([]);
  }, 120_000);

  test("a missing image: docxy answers 404 on the mirror, so Docker falls back to Docker Hub (unreachable here)", async () => {
    const mark = env.docxy.log().length;
    const missing = await dockerd.docker(["pull", "nosuch/thing"]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("registry-1.docker.io"); // the fallback, after the mirror's 404 (fact 14)
    // HEAD to resolve the tag, then GET to read the error body (§4.1); a 404 each, not a 5xx.
    const manifests = summary(accessLinesSince(env, mark)).filter((s) => s.includes("/manifests/"));
    expect(manifests).toEqual(["HEAD /v2/nosuch/thing/manifests/latest 404", "GET /v2/nosuch/thing/manifests/latest 404"]);
  }, 120_000);

  test("docker pull <docxy>/library/nginx (an OCI index) by host, after Docker's TLS attempt", async () => {
    const { nginx } = env.upstream.images;
    const mark = env.docxy.log().length;
    // 127.0.0.0/8 is insecure by default: Docker tries https first, then http (fact 17).
    await dockerd.dockerOk(["pull", `${env.host}/library/nginx`]);
    const image = await inspect(`${env.host}/library/nginx`);
    expect(image.repoDigests).toContain(`${env.host}/library/nginx@${nginx.digest}`);
    expect(image.id).toBe(hostManifest(nginx).config.digest);
    expect(summary(accessLinesSince(env, mark))).toContain("HEAD /v2/library/nginx/manifests/latest 200");
    expect(await generate204Status(env)).toBe(204);
  }, 120_000);

  test("docker login <docxy>: a wrong password fails, the right one succeeds, then a private pull works", async () => {
    const { secret } = env.upstream.images;
    const ref = `${env.host}/private/secret:latest`;
    const configFile = join(dockerd.configDir, "config.json");

    const anonymous = await dockerd.docker(["pull", ref]);
    expect(anonymous.code).not.toBe(0); // the token server grants anonymous users nothing under private/

    // The daemon pings /v2/ (401 from docxy), then GETs docxy's realm with Basic credentials (fact 10).
    const wrong = await dockerd.docker(["login", env.host, "-u", "alice", "--password-stdin"], { stdin: "wrong\n" });
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toContain("incorrect username or password"); // the upstream's message, passed through
    const tokenMark = env.upstream.tokenLog.length;
    const right = await dockerd.docker(["login", env.host, "-u", "alice", "--password-stdin"], { stdin: "secret\n" });
    expect(right.code).toBe(0);
    expect(right.stdout).toContain("Login Succeeded");
    const login = env.upstream.tokenLog.slice(tokenMark);
    expect(login.some((r) => r.method === "GET" && r.user === "alice" && r.status === 200)).toBe(true);
    // The upstream returned a refresh_token, so the CLI stored an identitytoken for docxy's host.
    const saved = JSON.parse(readFileSync(configFile, "utf8")).auths[env.host];
    expect(saved.identitytoken).toBeString();

    const pullMark = env.upstream.tokenLog.length;
    await dockerd.dockerOk(["pull", ref]);
    expect((await inspect(ref)).repoDigests).toContain(`${env.host}/private/secret@${secret.digest}`);
    // With an identity token Docker uses the OAuth POST with grant_type=refresh_token (fact 9).
    const pull = env.upstream.tokenLog.slice(pullMark);
    const refresh = pull.find((r) => r.method === "POST" && r.form?.some(([k, v]) => k === "grant_type" && v === "refresh_token"));
    expect(refresh?.status).toBe(200);
    expect(refresh?.form).toContainEqual(["scope", "repository:private/secret:pull"]);
  }, 120_000);

  test("a mirror pull carries the user's Docker Hub credentials to docxy's realm, and on upstream", async () => {
    const { secret } = env.upstream.images;
    const without = await dockerd.docker(["pull", "private/secret:latest"]);
    expect(without.code).not.toBe(0); // anonymous on the mirror, then registry-1.docker.io is unreachable

    // `docker login` for Docker Hub itself would go to the real index, so write what it would save.
    const hubConfig = join(dockerd.dir, "hub-cli");
    mkdirSync(hubConfig, { recursive: true });
    const auth = Buffer.from("alice:secret").toString("base64");
    writeFileSync(join(hubConfig, "config.json"), JSON.stringify({ auths: { "https://index.docker.io/v1/": { auth } } }));

    const tokenMark = env.upstream.tokenLog.length;
    await dockerd.dockerOk(["pull", "private/secret:latest"], { configDir: hubConfig });
    expect((await inspect("private/secret:latest")).repoDigests).toContain(`private/secret@${secret.digest}`);
    // Docker 20.10 gives its Hub credentials to the mirror's realm (fact 14); docxy forwards them.
    const requests = env.upstream.tokenLog.slice(tokenMark);
    const withUser = requests.find((r) => r.user === "alice" && r.query.some(([k, v]) => k === "scope" && v === "repository:private/secret:pull"));
    expect(withUser).toMatchObject({ method: "GET", authScheme: "Basic", status: 200 });
  }, 120_000);

  test("docxy still answers /generate_204 after all of Docker's traffic", async () => {
    expect(await generate204Status(env)).toBe(204);
  });
});

describe.skipIf(unavailable !== undefined)("docker 20.10 through docxy with a sendfile port", () => {
  let env: ProxiedUpstream;
  let dockerd: Dockerd;

  beforeAll(async () => {
    env = await startProxiedUpstream({}, "[server]\nsendfile_enabled = true\nsendfile_port = 0\n");
    dockerd = await startDockerd({ mirrors: [`http://${env.host}`] });
  }, 180_000);

  afterAll(async () => {
    await dockerd?.stop();
    await env?.stop();
  }, 90_000);

  test("a second pull follows docxy's 307s to the sendfile port for every blob: same image, no CDN request", async () => {
    const { app } = env.upstream.images;
    await dockerd.dockerOk(["pull", "acme/app:v1"]);
    await dockerd.dockerOk(["rmi", "acme/app:v1"]);
    const cdnBefore = env.upstream.cdnLog.length;
    const mark = env.docxy.log().length;
    await dockerd.dockerOk(["pull", "acme/app:v1"]);

    const [image] = JSON.parse(await dockerd.dockerOk(["image", "inspect", "acme/app:v1"]));
    expect(image.RepoDigests).toContain(`acme/app@${app.digest}`);
    expect(env.upstream.cdnLog.length).toBe(cdnBefore);
    const blobs = [app.manifests[0]!.config, ...app.manifests[0]!.layers].map((b) => b.digest).sort();
    expect(sendfileTrips(accessLinesSince(env, mark))).toEqual({ redirected: blobs, sent: blobs });
  }, 120_000);
});
