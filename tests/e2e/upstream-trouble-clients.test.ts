/**
 * Upstream trouble never makes cached content unpullable, with the real daemons and tools
 * (issue 14, "Done means", first bullet; tests/e2e/upstream-trouble.test.ts does the same
 * with skopeo and checks each mode's registry JSON in detail).
 *
 * One real upstream (distribution 2.8, its token server and CDN, which answer docxy only:
 * `onlyThroughProxy`) behind fault switches on the registry and the token service, and one
 * docxy in front of them with `tag_ttl = "0s"`, so that every pull really asks the upstream for
 * the tag and meets the fault. Each client warms the cache while the upstream is up, then, in
 * each kind of trouble (support/trouble.ts TROUBLES: 429, 500, 503, refused, hung), pulls the cached
 * images again (their local copies removed first, so the bytes come through docxy), with the
 * same digests; an image nobody pulled (library/nginx) fails. Where the client logs in cheaply
 * (ctr --user, docker login, podman --creds), the cached private image still pulls for the
 * logged-in client and not for an anonymous one. After recovery each client's pull revalidates
 * the tags with the upstream again.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { registryLines, registryLogSettled, startCachingDocxy, tempFiles, type CachingDocxy } from "../support/cache/harness";
import { startTrouble, TROUBLES, type Trouble, type TroubleMode } from "../support/trouble";
import { startUpstream, type Upstream } from "../support/upstream";
import { containerdUnavailable, startContainerd, type Containerd } from "./support/containerd";
import { containersTools, podmanUnavailable, type ContainersTools } from "./support/containers";
import { dockerdUnavailable, startDockerd, type Dockerd } from "./support/dockerd";
import { hostManifest } from "./support/images";
import type { RunResult } from "./support/process";

const skipped = { containerd: containerdUnavailable(), docker: dockerdUnavailable(), podman: podmanUnavailable() };
for (const [client, why] of Object.entries(skipped)) if (why) console.warn(`SKIPPED ${client} in tests/e2e/upstream-trouble-clients.test.ts: ${why}`);
const anyClient = Object.values(skipped).some((why) => why === undefined);

let upstream: Upstream;
let registry: Trouble;
let tokens: Trouble;
let docxy: CachingDocxy;
let host: string;
beforeAll(async () => {
  if (!anyClient) return;
  upstream = await startUpstream({ onlyThroughProxy: true });
  registry = await startTrouble(upstream.registryUrl);
  tokens = await startTrouble(upstream.realm);
  const config = [
    "[registry]",
    `upstream_registry = "${registry.url}"`,
    `auth_realm = "${tokens.via(upstream.realm)}"`,
    `auth_service = "${upstream.service}"`,
    "[upstream]",
    "header_timeout = 2",
    "ping_timeout = 1",
    "[cache]",
    'tag_ttl = "0s"',
    "",
  ].join("\n");
  docxy = await startCachingDocxy(config);
  host = new URL(docxy.url).host;
}, 120_000);
afterAll(async () => {
  await docxy?.stop();
  await Promise.all([registry?.stop(), tokens?.stop()]);
  await upstream?.stop();
});

/** Runs `body` with the registry and its token service in `mode`, then lets them pass again. */
async function inTrouble(mode: TroubleMode, body: () => Promise<void>): Promise<void> {
  await Promise.all([registry.set(mode), tokens.set(mode)]);
  try {
    await body();
  } finally {
    await Promise.all([registry.set({ kind: "pass" }), tokens.set({ kind: "pass" })]);
  }
}

/**
 * Runs `pulls` with the upstream up again and checks they revalidated the cached tags with the
 * registry (`tag_ttl = "0s"`: served stale would leave no request in its log). The image
 * refused during the trouble stays unpulled here, so each client's trouble tests meet an uncached
 * one (tests/e2e/upstream-trouble.test.ts pulls it after recovery).
 */
async function afterRecovery(pulls: () => Promise<void>): Promise<void> {
  await registryLogSettled(upstream);
  const asked = () => ({ app: registryLines(upstream, /\/v2\/acme\/app\/manifests\/v1 /).length, alpine: registryLines(upstream, /\/v2\/library\/alpine\/manifests\/latest /).length });
  const before = asked();
  await pulls();
  await registryLogSettled(upstream);
  const after = asked();
  expect({ app: after.app > before.app, alpine: after.alpine > before.alpine }).toEqual({ app: true, alpine: true });
}

function ok(result: RunResult, what: string): string {
  if (result.code !== 0) throw new Error(`${what} failed (exit ${result.code}):\n${result.stderr.slice(-4000)}\n${result.stdout.slice(-2000)}`);
  return result.stdout;
}

/** The upstream's token service and CDN saw no request but docxy's (they answer 403 to anyone else). */
function onlyDocxyReachedUpstream(tokenMark: number, cdnMark: number): void {
  expect(upstream.tokenLog.slice(tokenMark).filter((r) => r.status === 403)).toEqual([]);
  expect(upstream.cdnLog.slice(cdnMark).filter((r) => r.status === 403)).toEqual([]);
}

describe.skipIf(skipped.containerd !== undefined)("containerd 1.6 (ctr, hosts.toml mirror of docker.io) while the upstream is in trouble", () => {
  let containerd: Containerd;
  beforeAll(async () => {
    containerd = await startContainerd({ mirrorHost: host });
  }, 120_000);
  afterAll(async () => {
    await containerd?.stop();
  }, 60_000);

  const IMAGES = ["docker.io/library/alpine:latest", "docker.io/acme/app:v1"]; // a manifest list, one schema2 manifest
  const SECRET = "docker.io/private/secret:latest";
  const NGINX = "docker.io/library/nginx:latest"; // never pulled before the trouble
  const expected = () => ({ [IMAGES[0]!]: upstream.images.alpine.digest, [IMAGES[1]!]: upstream.images.app.digest, [SECRET]: upstream.images.secret.digest });

  const pull = (ref: string, ...flags: string[]) => containerd.ctr(["images", "pull", "--hosts-dir", containerd.hostsDir, ...flags, ref], 240_000);
  /** Pulls `ref` (which must work), returns the digest `ctr images ls` lists, and forgets the image and its content again. */
  async function pullFresh(ref: string, ...flags: string[]): Promise<string | undefined> {
    ok(await pull(ref, ...flags), `ctr images pull ${ref}`);
    const lines = (await containerd.ctrOk(["images", "ls"])).split("\n").map((line) => line.split(/\s+/));
    await containerd.ctrOk(["images", "rm", "--sync", ref]); // --sync: its content is collected now, so the next pull fetches it again
    return lines.find((cols) => cols[0] === ref)?.[2];
  }

  test("warm: ctr pulls the public images and, with --user, the private one", async () => {
    for (const ref of IMAGES) expect({ ref, digest: await pullFresh(ref) }).toEqual({ ref, digest: expected()[ref] });
    expect(await pullFresh(SECRET, "--user", "alice:secret")).toBe(upstream.images.secret.digest);
  }, 300_000);

  for (const { name, mode, uncached, shown } of TROUBLES) {
    test(`the upstream ${name}: ctr pulls the cached images with the same digests, the private one only with --user; an uncached one fails`, async () => {
      await inTrouble(mode, async () => {
        for (const ref of IMAGES) expect({ ref, digest: await pullFresh(ref) }).toEqual({ ref, digest: expected()[ref] });
        expect(await pullFresh(SECRET, "--user", "alice:secret")).toBe(upstream.images.secret.digest);
        expect((await pull(SECRET)).code).not.toBe(0);
        // ctr resolves the tag with a HEAD, so it shows the status only.
        const cold = await pull(NGINX);
        expect(cold.code).not.toBe(0);
        expect(cold.stderr).toContain(`failed with status code [manifests latest]: ${uncached.status} `);
      });
    }, 300_000);
  }

  test("after recovery: ctr pulls again with the tags revalidated upstream", async () => {
    await afterRecovery(async () => {
      for (const ref of IMAGES) expect({ ref, digest: await pullFresh(ref) }).toEqual({ ref, digest: expected()[ref] });
    });
  }, 300_000);
});

describe.skipIf(skipped.docker !== undefined)("docker 20.10 (registry-mirrors and by host) while the upstream is in trouble", () => {
  let dockerd: Dockerd;
  let anonymous: string; // a DOCKER_CONFIG without any login
  beforeAll(async () => {
    dockerd = await startDockerd({ mirrors: [`http://${host}`] });
    anonymous = join(dockerd.dir, "anonymous-cli");
    mkdirSync(anonymous);
    writeFileSync(join(anonymous, "config.json"), "{}");
  }, 180_000);
  afterAll(async () => {
    await dockerd?.stop();
  }, 90_000);

  /** Each reference a pull must resolve, with the repository as Docker names it in RepoDigests, the digest and the image id. */
  const pulls = () => {
    const { alpine, app } = upstream.images;
    return [
      { ref: "alpine", repo: "alpine", digest: alpine.digest, id: hostManifest(alpine).config.digest }, // through the mirror
      { ref: "acme/app:v1", repo: "acme/app", digest: app.digest, id: app.manifests[0]!.config.digest },
      { ref: `${host}/library/alpine`, repo: `${host}/library/alpine`, digest: alpine.digest, id: hostManifest(alpine).config.digest }, // by host
      { ref: `${host}/acme/app:v1`, repo: `${host}/acme/app`, digest: app.digest, id: app.manifests[0]!.config.digest },
    ];
  };

  /** Pulls `ref` (which must work), returns whether it has the expected digest and id, and removes the image (and its layers) again. */
  async function pullFresh(ref: string, repo: string, options: { configDir?: string } = {}): Promise<{ digest: string | undefined; id: string }> {
    ok(await dockerd.docker(["pull", ref], options), `docker pull ${ref}`);
    const [image] = JSON.parse(await dockerd.dockerOk(["image", "inspect", ref]));
    await dockerd.dockerOk(["rmi", ref]);
    return { digest: (image.RepoDigests as string[]).find((d) => d.startsWith(`${repo}@`))?.slice(repo.length + 1), id: image.Id };
  }

  test("warm: docker pulls the public images through the mirror and by host, and after docker login the private one", async () => {
    for (const { ref, repo, digest, id } of pulls()) expect({ ref, ...(await pullFresh(ref, repo)) }).toEqual({ ref, digest, id });
    const login = await dockerd.docker(["login", host, "-u", "alice", "--password-stdin"], { stdin: "secret\n" });
    expect(ok(login, "docker login")).toContain("Login Succeeded");
    expect((await pullFresh(`${host}/private/secret:latest`, `${host}/private/secret`)).digest).toBe(upstream.images.secret.digest);
  }, 300_000);

  for (const { name, mode, uncached, shown } of TROUBLES) {
    test(`the upstream ${name}: docker pulls the cached images with the same digests, the private one only logged in; uncached ones fail, and Docker itself never reached the upstream`, async () => {
      const tokenMark = upstream.tokenLog.length;
      const cdnMark = upstream.cdnLog.length;
      await inTrouble(mode, async () => {
        for (const { ref, repo, digest, id } of pulls()) expect({ ref, ...(await pullFresh(ref, repo)) }).toEqual({ ref, digest, id });
        expect((await pullFresh(`${host}/private/secret:latest`, `${host}/private/secret`)).digest).toBe(upstream.images.secret.digest);
        expect((await dockerd.docker(["pull", `${host}/private/secret:latest`], { configDir: anonymous })).code).not.toBe(0);

        // Through the mirror: docxy's error makes Docker fall back to Docker Hub, unreachable here (the only way it could have come through).
        const mirrored = await dockerd.docker(["pull", "library/nginx"]);
        expect(mirrored.code).not.toBe(0);
        expect(mirrored.stderr).toContain("registry-1.docker.io");
        const direct = await dockerd.docker(["pull", `${host}/library/nginx`]);
        expect(direct.code).not.toBe(0);
        expect(direct.stderr.toLowerCase()).toContain(shown);
      });
      onlyDocxyReachedUpstream(tokenMark, cdnMark);
    }, 300_000);
  }

  test("after recovery: docker pulls again with the tags revalidated upstream", async () => {
    await afterRecovery(async () => {
      for (const { ref, repo, digest, id } of pulls()) expect({ ref, ...(await pullFresh(ref, repo)) }).toEqual({ ref, digest, id });
    });
  }, 300_000);
});

describe.skipIf(skipped.podman !== undefined)("podman 4.3 (registries.conf mirror of docker.io, and by host with --creds) while the upstream is in trouble", () => {
  let tools: ContainersTools;
  beforeAll(() => {
    tools = containersTools({ mirrorHost: host });
  });
  afterAll(async () => {
    await tools?.cleanup();
  }, 60_000);

  const IMAGES = ["docker.io/library/alpine:latest", "docker.io/acme/app:v1"];
  const secretRef = () => `${host}/private/secret:latest`;
  const expected = (ref: string) => (ref.includes("alpine") ? upstream.images.alpine.digest : ref.includes("secret") ? upstream.images.secret.digest : upstream.images.app.digest);

  /** Pulls `ref` (which must work), returns the image's digest, and removes it again. */
  async function pullFresh(ref: string, ...flags: string[]): Promise<string> {
    ok(await tools.podman(["pull", ...flags, ref]), `podman pull ${ref}`);
    const [image] = JSON.parse(ok(await tools.podman(["image", "inspect", ref]), "podman image inspect"));
    ok(await tools.podman(["rmi", ref]), `podman rmi ${ref}`);
    return image.Digest;
  }
  const privately = ["--creds", "alice:secret", "--tls-verify=false"];

  test("warm: podman pulls the public images through the mirror and the private one by host with --creds", async () => {
    for (const ref of IMAGES) expect({ ref, digest: await pullFresh(ref) }).toEqual({ ref, digest: expected(ref) });
    expect(await pullFresh(secretRef(), ...privately)).toBe(expected("secret"));
  }, 300_000);

  for (const { name, mode, uncached, shown } of TROUBLES) {
    test(`the upstream ${name}: podman pulls the cached images with the same digests, the private one only with --creds; an uncached one fails`, async () => {
      await inTrouble(mode, async () => {
        for (const ref of IMAGES) expect({ ref, digest: await pullFresh(ref) }).toEqual({ ref, digest: expected(ref) });
        expect(await pullFresh(secretRef(), ...privately)).toBe(expected("secret"));
        expect((await tools.podman(["pull", "--tls-verify=false", secretRef()])).code).not.toBe(0);
        const cold = await tools.podman(["pull", "docker.io/library/nginx:latest"]);
        expect(cold.code).not.toBe(0);
        expect(cold.stderr).toContain(`Mirrors also failed: [${host}/library/nginx:latest`);
        expect(cold.stderr.toLowerCase()).toContain(shown);
      });
    }, 300_000);
  }

  test("after recovery: podman pulls again with the tags revalidated upstream", async () => {
    await afterRecovery(async () => {
      for (const ref of IMAGES) expect({ ref, digest: await pullFresh(ref) }).toEqual({ ref, digest: expected(ref) });
    });
  }, 300_000);
});

test.skipIf(!anyClient)("nothing was half-committed: no fill was left behind in docxy's cache", () => {
  expect(tempFiles(docxy.cacheDir)).toEqual([]);
});
