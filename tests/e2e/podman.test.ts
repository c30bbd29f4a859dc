/**
 * podman 4.3 and buildah 1.28 (containers/image 5.23, Debian) pulling through docxy
 * (protocol.md §4.4): as an insecure mirror of docker.io in registries.conf, and directly by
 * host:port with --creds. These clients try HTTPS first even on an insecure registry, so docxy's
 * plain-HTTP port gets a TLS ClientHello before every session (fact 17).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startProxiedUpstream, type ProxiedUpstream } from "../support/proxied-upstream";
import { containersTools, podmanUnavailable, type ContainersTools } from "./support/containers";
import { accessLinesSince, generate204Status, summary } from "./support/docxy-log";
import { hostManifest } from "./support/images";
import type { RunResult } from "./support/process";

const unavailable = podmanUnavailable();
if (unavailable) console.warn(`SKIPPED tests/e2e/podman.test.ts: ${unavailable}`);

function ok(result: RunResult, what: string): string {
  if (result.code !== 0) throw new Error(`${what} failed (exit ${result.code}):\n${result.stderr.slice(-4000)}`);
  return result.stdout;
}

describe.skipIf(unavailable !== undefined)("podman and buildah through docxy", () => {
  let env: ProxiedUpstream;
  let tools: ContainersTools;

  beforeAll(async () => {
    env = await startProxiedUpstream();
    tools = containersTools({ mirrorHost: env.host });
  }, 180_000);

  afterAll(async () => {
    await tools?.cleanup();
    await env?.stop();
  }, 60_000);

  test("podman pull docker.io/library/alpine goes through the mirror; the image digest is the list's", async () => {
    const { alpine } = env.upstream.images;
    const mark = env.docxy.log().length;
    const pulled = await tools.podman(["pull", "docker.io/library/alpine:latest"]);
    ok(pulled, "podman pull");
    const [image] = JSON.parse(ok(await tools.podman(["image", "inspect", "docker.io/library/alpine:latest"]), "podman image inspect"));
    expect(image.Digest).toBe(alpine.digest);
    expect(image.RepoDigests).toContain(`docker.io/library/alpine@${alpine.digest}`);
    expect(image.Id).toBe(hostManifest(alpine).config.digest.slice("sha256:".length));
    // c/image pings /v2/ and GETs the tag (no HEAD, no ?ns=) on the mirror (§4.4).
    const served = summary(accessLinesSince(env, mark));
    expect(served).toContain("GET /v2/library/alpine/manifests/latest 200");
    expect(served).toContain(`GET /v2/library/alpine/manifests/${hostManifest(alpine).digest} 200`);
  }, 120_000);

  test("a short name (alpine:3.20) resolves to docker.io/library/alpine and so to the mirror", async () => {
    const { alpine } = env.upstream.images;
    const mark = env.docxy.log().length;
    ok(await tools.podman(["pull", "alpine:3.20"]), "podman pull alpine:3.20");
    const [image] = JSON.parse(ok(await tools.podman(["image", "inspect", "docker.io/library/alpine:3.20"]), "podman image inspect"));
    expect(image.Digest).toBe(alpine.digest);
    expect(summary(accessLinesSince(env, mark))).toContain("GET /v2/library/alpine/manifests/3.20 200");
  }, 120_000);

  test("a missing image: the mirror's 404 is reported, then Docker Hub is tried (unreachable here)", async () => {
    const missing = await tools.podman(["pull", "docker.io/library/nosuch:latest"]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain(`Mirrors also failed: [${env.host}/library/nosuch:latest: reading manifest latest`);
    expect(missing.stderr).toContain("manifest unknown");
  }, 120_000);

  test("buildah pull docker.io/acme/app:v1 goes through the mirror", async () => {
    const { app } = env.upstream.images;
    const mark = env.docxy.log().length;
    ok(await tools.buildah(["pull", "docker.io/acme/app:v1"]), "buildah pull");
    const digest = ok(await tools.buildah(["inspect", "--type", "image", "--format", "{{.FromImageDigest}}", "docker.io/acme/app:v1"]), "buildah inspect");
    expect(digest.trim()).toBe(app.digest);
    expect(summary(accessLinesSince(env, mark))).toContain("GET /v2/acme/app/manifests/v1 200");
  }, 120_000);

  test("podman pull --creds alice:secret <docxy>/private/secret (direct, --tls-verify=false)", async () => {
    const { secret } = env.upstream.images;
    const ref = `${env.host}/private/secret:latest`;
    const anonymous = await tools.podman(["pull", "--tls-verify=false", ref]);
    expect(anonymous.code).not.toBe(0);

    const tokenMark = env.upstream.tokenLog.length;
    ok(await tools.podman(["pull", "--creds", "alice:secret", ref, "--tls-verify=false"]), "podman pull --creds");
    const [image] = JSON.parse(ok(await tools.podman(["image", "inspect", ref]), "podman image inspect"));
    expect(image.Digest).toBe(secret.digest);
    // c/image asks the realm with GET and Basic credentials; docxy passed them on upstream.
    const requests = env.upstream.tokenLog.slice(tokenMark);
    const withUser = requests.find((r) => r.user === "alice" && r.query.some(([k, v]) => k === "scope" && v === "repository:private/secret:pull"));
    expect(withUser).toMatchObject({ method: "GET", authScheme: "Basic", status: 200 });
  }, 120_000);

  test("docxy still answers /generate_204 after podman's and buildah's TLS attempts", async () => {
    expect(await generate204Status(env)).toBe(204);
  });
});
