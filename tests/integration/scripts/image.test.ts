/**
 * The container image (scripts/image.ts) as users get it: loaded from its archive, run with a
 * mounted config file and cache directory, and pulled through by skopeo and podman (and docker,
 * where a private dockerd can run) from the real test upstream. `--network host`: the container
 * reaches the upstream on the host's loopback, and docxy listens on the port DOCXY_SERVER_HTTP_PORT
 * gives, which `docxy health` inside the container follows too.
 *
 * The archives are built when missing or older than dist/docxy (that takes a minute).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { version } from "../../../package.json";
import { imagePaths } from "../../../scripts/image";
import { dockerdUnavailable, startDockerd, type Dockerd } from "../../e2e/support/dockerd";
import { containersTools, podmanUnavailable, type ContainersTools } from "../../e2e/support/containers";
import { accessLines } from "../../e2e/support/docxy-log";
import { hostManifest } from "../../e2e/support/images";
import { baseEnv, run, startDaemon, tempDir, type Daemon } from "../../e2e/support/process";
import { DOCXY_BIN, ensureBinary } from "../../support/docxy-process";
import { freePort } from "../../support/ports";
import { skopeoCopyOk } from "../../support/skopeo";
import { registryToml, startUpstream, type Upstream } from "../../support/upstream";

const ROOT = resolve(import.meta.dir, "../../..");
const UID = 10001;
const archives = imagePaths("x64");

const unavailable = process.arch !== "x64" ? "the image test builds the linux-x64 image" : podmanUnavailable();
if (unavailable) console.warn(`SKIPPED tests/integration/scripts/image.test.ts: ${unavailable}`);
const noDocker = unavailable ?? dockerdUnavailable();
if (noDocker && !unavailable) console.warn(`SKIPPED docker in tests/integration/scripts/image.test.ts: ${noDocker}`);

let upstream: Upstream;
let dir: string;
let config: string;

/** A cache directory the container's user owns, as a user would prepare it for a bind mount. */
function cacheDir(name: string): string {
  const path = join(dir, name);
  mkdirSync(path);
  chownSync(path, UID, UID);
  return path;
}

/** The files docxy wrote into a cache directory, with their owners. */
function owners(path: string): Set<number> {
  const found = new Set<number>();
  const walk = (p: string) => {
    for (const entry of readdirSync(p, { withFileTypes: true })) {
      found.add(statSync(join(p, entry.name)).uid);
      if (entry.isDirectory()) walk(join(p, entry.name));
    }
  };
  walk(path);
  return found;
}

async function health(port: number): Promise<{ status: number; version?: string }> {
  const response = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(15_000) });
  return { status: response.status, version: ((await response.json()) as { version?: string }).version };
}

// podman's default limits (nofile and nproc around a million) are above what runc may set in
// this sandbox; docker's (its daemon's own) are not.
const LIMITS = ["--ulimit", "nofile=16384:16384", "--ulimit", "nproc=4096:4096"];

/** Arguments both engines run the image with: the config file, the cache, the port. */
const runArgs = (name: string, port: number, cache: string) => [
  ...["--name", name, "--network", "host"],
  ...["-v", `${config}:/etc/docxy/docxy.toml:ro`, "-v", `${cache}:/var/lib/docxy`, "-e", `DOCXY_SERVER_HTTP_PORT=${port}`],
];

beforeAll(async () => {
  if (unavailable) return;
  await ensureBinary();
  const stale = [archives.oci, archives.docker].some((f) => !existsSync(f) || statSync(f).mtimeMs < statSync(DOCXY_BIN).mtimeMs);
  if (stale) {
    const built = await run([process.execPath, join(ROOT, "scripts/image.ts")], { env: baseEnv({ HOME: process.env.HOME ?? "/root" }), timeoutMs: 600_000 });
    if (built.code !== 0) throw new Error(`scripts/image.ts failed:\n${built.stderr}\n${built.stdout}`);
  }
  upstream = await startUpstream({ onlyThroughProxy: true });
  dir = tempDir("image");
  chmodSync(dir, 0o755);
  config = join(dir, "docxy.toml");
  writeFileSync(config, `${registryToml(upstream)}[server]\nbind = ["127.0.0.1"]\n`);
  chmodSync(config, 0o644);
}, 700_000);

afterAll(async () => {
  await upstream?.stop();
});

describe.skipIf(unavailable !== undefined)("the image under podman", () => {
  let tools: ContainersTools;
  let container: Daemon;
  let port: number;
  let cache: string;
  const name = `docxy-image-test-${process.pid}`;

  beforeAll(async () => {
    port = await freePort();
    cache = cacheDir("podman-cache");
    tools = containersTools({ mirrorHost: `127.0.0.1:${port}` });
    const loaded = await tools.podman(["load", "-i", archives.oci]);
    if (loaded.code !== 0) throw new Error(`podman load failed:\n${loaded.stderr}`);
    expect(loaded.stdout).toContain(`docxy:${version}`);
    // In the foreground under the watchdog: the container goes (--rm) when this test process does.
    const { argv, env } = tools.podmanCommand(["run", "--rm", ...LIMITS, ...runArgs(name, port, cache), `docxy:${version}`]);
    container = await startDaemon({ name: "docxy-container", argv, env, dir: tools.dir, ready: async () => (await health(port)).status === 200 });
  }, 180_000);

  afterAll(async () => {
    await container?.stop(30_000);
    await tools?.podman(["rm", "--force", "--ignore", name]);
    await tools?.cleanup();
  }, 90_000);

  test("the image: user 10001, the volume, the port, the config and cache paths; its size", async () => {
    const [image] = JSON.parse((await tools.podman(["image", "inspect", `docxy:${version}`])).stdout);
    expect(image.Config.User).toBe(`${UID}:${UID}`);
    expect(Object.keys(image.Config.Volumes)).toEqual(["/var/lib/docxy"]);
    expect(Object.keys(image.Config.ExposedPorts)).toEqual(["5000/tcp"]);
    expect(image.Config.Entrypoint).toEqual(["/usr/local/bin/docxy"]);
    expect(image.Config.Env).toEqual(expect.arrayContaining(["DOCXY_CONFIG=/etc/docxy/docxy.toml", "DOCXY_CACHE_DIR=/var/lib/docxy/cache"]));
    expect(image.Config.Labels["org.opencontainers.image.version"]).toBe(version);
    expect(image.Architecture).toBe("amd64");
    console.log(`docxy:${version} is ${(image.Size / 1e6).toFixed(1)} MB unpacked; ${archives.oci} ${(statSync(archives.oci).size / 1e6).toFixed(1)} MB`);
  });

  test("it answers /health, and `docxy health` inside the container finds it by DOCXY_SERVER_HTTP_PORT", async () => {
    expect(await health(port)).toEqual({ status: 200, version });
    const checked = await tools.podman(["exec", name, "docxy", "health"]);
    expect(checked.code, checked.stderr).toBe(0);
    expect(checked.stdout).toContain(`http://127.0.0.1:${port}/health: `);
  });

  test("it runs as 10001, not root", async () => {
    const pid = (await tools.podman(["inspect", "--format", "{{.State.Pid}}", name])).stdout.trim();
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    expect(status).toMatch(new RegExp(`^Uid:\\s+${UID}\\s+${UID}\\s+${UID}\\s+${UID}$`, "m"));
    expect(status).toMatch(new RegExp(`^Gid:\\s+${UID}\\s+${UID}\\s+${UID}\\s+${UID}$`, "m"));
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0]).toBe("/usr/local/bin/docxy");
  });

  test("skopeo copies an image through it, and the blobs land in the mounted cache, owned by 10001", async () => {
    const { app } = upstream.images;
    const files = await skopeoCopyOk(`127.0.0.1:${port}`, "acme/app:v1");
    expect(files["manifest.json"]).toBe(app.digest);
    // docxy's access log, on the container's stdout.
    expect(accessLines(container.log()).map((l) => `${l.method} ${l.path} ${l.status}`)).toContain("GET /v2/acme/app/manifests/v1 200");
    expect(existsSync(join(cache, "cache"))).toBe(true);
    expect([...owners(cache)]).toEqual([UID]);
  }, 120_000);

  test("podman pulls docker.io/library/alpine with it as the docker.io mirror", async () => {
    const { alpine } = upstream.images;
    const pulled = await tools.podman(["pull", "docker.io/library/alpine:latest"]);
    expect(pulled.code, pulled.stderr).toBe(0);
    const [image] = JSON.parse((await tools.podman(["image", "inspect", "docker.io/library/alpine:latest"])).stdout);
    expect(image.Digest).toBe(alpine.digest);
    expect(image.Id).toBe(hostManifest(alpine).config.digest.slice("sha256:".length));
  }, 120_000);
});

describe.skipIf(noDocker !== undefined)("the image under docker", () => {
  let dockerd: Dockerd;
  let port: number;
  const name = `docxy-image-test-${process.pid}`;

  beforeAll(async () => {
    port = await freePort();
    dockerd = await startDockerd({ mirrors: [] });
    // Docker 20.10 loads Docker archives only (OCI archives from Docker 25 on): dist/docxy-docker.tar.
    expect(await dockerd.dockerOk(["load", "-i", archives.docker])).toContain(`Loaded image: docxy:${version}`);
    // -d is safe here: the private dockerd, and its containers with it, stop when this process ends.
    await dockerd.dockerOk(["run", "-d", ...runArgs(name, port, cacheDir("docker-cache")), "--health-interval", "1s", `docxy:${version}`]);
  }, 180_000);

  afterAll(async () => {
    await dockerd?.docker(["rm", "--force", name]);
    await dockerd?.stop();
  }, 90_000);

  test("the Docker archive keeps the HEALTHCHECK, and docker finds the container healthy through it", async () => {
    const [image] = JSON.parse(await dockerd.dockerOk(["image", "inspect", `docxy:${version}`]));
    expect(image.Config.Healthcheck.Test).toEqual(["CMD", "/usr/local/bin/docxy", "health"]);
    expect(image.Config.User).toBe(`${UID}:${UID}`);
    let state = "";
    for (const deadline = Date.now() + 60_000; state !== "healthy" && Date.now() < deadline; await Bun.sleep(500)) {
      state = (await dockerd.dockerOk(["inspect", "--format", "{{.State.Health.Status}}", name])).trim();
    }
    expect(state).toBe("healthy");
    expect(await health(port)).toEqual({ status: 200, version });
  }, 90_000);

  test("skopeo copies an image through it", async () => {
    const files = await skopeoCopyOk(`127.0.0.1:${port}`, "acme/app:v1");
    expect(files["manifest.json"]).toBe(upstream.images.app.digest);
  }, 120_000);
});
