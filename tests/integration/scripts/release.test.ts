/**
 * `npm run release` (scripts/release.ts) and what an administrator does with its output: check it
 * with `sha256sum -c`, and install from it with install.sh --version, here from a local HTTP server
 * serving dist/release as a release's download directory. A tampered binary is refused.
 *
 * The release is made when dist/release is missing or older than dist/docxy (a few minutes: two
 * builds and two images).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { version } from "../../../package.json";
import { sysroot } from "../../../scripts/sysroot";
import { podmanUnavailable } from "../../e2e/support/containers";
import { baseEnv, run } from "../../e2e/support/process";
import { DOCXY_BIN, ensureBinary } from "../../support/docxy-process";

const ROOT = resolve(import.meta.dir, "../../..");
const RELEASE = join(ROOT, "dist/release");
const FILES = [
  "SHA256SUMS",
  "docxy-linux-arm64",
  "docxy-linux-arm64-docker.tar",
  "docxy-linux-arm64-oci.tar",
  "docxy-linux-x64",
  "docxy-linux-x64-docker.tar",
  "docxy-linux-x64-oci.tar",
  "docxy.example.toml",
  "docxy.service",
  "install.sh",
];

// buildah makes the images, apt the arm64 libc they hold.
let unavailable = process.arch !== "x64" ? "releases are made on x64" : podmanUnavailable();
if (!unavailable) await sysroot("arm64").catch((error: Error) => (unavailable = error.message));
if (unavailable) console.warn(`SKIPPED tests/integration/scripts/release.test.ts: ${unavailable}`);

describe.skipIf(unavailable !== undefined)("npm run release", () => {
  let work: string;
  let server: ReturnType<typeof Bun.serve>;

  beforeAll(async () => {
    await ensureBinary();
    const sums = join(RELEASE, "SHA256SUMS");
    if (!existsSync(sums) || statSync(sums).mtimeMs < statSync(DOCXY_BIN).mtimeMs) {
      const child = Bun.spawn([process.execPath, "scripts/release.ts"], { cwd: ROOT, env: baseEnv({ HOME: process.env.HOME ?? "/root", PATH: process.env.PATH ?? "" }), stdout: "pipe", stderr: "pipe" });
      const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
      if (code !== 0) throw new Error(`scripts/release.ts failed (${code}):\n${stderr}\n${stdout}`);
    }
    work = mkdtempSync(join(tmpdir(), "docxy-release-test-"));
    // /v<VER>/<file> from dist/release, as GitHub's download URLs; under /tampered/ the x64 binary has a byte more.
    server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(request) {
        const path = new URL(request.url).pathname;
        const match = /^(\/tampered)?\/v([^/]+)\/([^/]+)$/.exec(path);
        if (!match || match[2] !== version || !FILES.includes(match[3]!)) return new Response("not found", { status: 404 });
        const file = Bun.file(join(RELEASE, match[3]!));
        if (match[1] && match[3] === "docxy-linux-x64") return new Response(new Blob([await file.arrayBuffer(), "\n"]));
        return new Response(file);
      },
    });
  }, 1_200_000);

  afterAll(() => {
    server?.stop(true);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test("dist/release holds both binaries, the image archives, installer, unit, example config and SHA256SUMS", () => {
    expect(readdirSync(RELEASE).sort()).toEqual(FILES);
    expect(readFileSync(join(RELEASE, "docxy.service"), "utf8")).toBe(readFileSync(join(ROOT, "scripts/docxy.service"), "utf8"));
    expect(readFileSync(join(RELEASE, "install.sh"), "utf8")).toBe(readFileSync(join(ROOT, "scripts/install.sh"), "utf8"));
    const listed = readFileSync(join(RELEASE, "SHA256SUMS"), "utf8").trim().split("\n").map((line) => line.split(/\s+\*?/)[1]);
    expect(listed).toEqual(FILES.filter((f) => f !== "SHA256SUMS"));
  });

  test("sha256sum -c accepts SHA256SUMS; the x64 binary runs and says the version", async () => {
    const checked = await run(["sh", "-c", `cd '${RELEASE}' && sha256sum -c SHA256SUMS`]);
    expect(checked.code, checked.stdout + checked.stderr).toBe(0);
    expect(checked.stdout.trim().split("\n")).toHaveLength(FILES.length - 1);
    expect((await run([join(RELEASE, "docxy-linux-x64"), "--version"])).stdout).toBe(`docxy ${version}\n`);
  }, 60_000);

  test("install.sh --version installs from the release over HTTP with a good checksum and refuses a tampered binary", async () => {
    const install = (root: string, base: string) =>
      run(["bash", join(RELEASE, "install.sh"), "--root", root, "--version", version, "--no-start"], {
        env: baseEnv({ HOME: work, TMPDIR: work, DOCXY_RELEASE_BASE_URL: base }),
      });
    const good = await install(join(work, "good"), server.url.origin);
    expect(good.code, good.stdout + good.stderr).toBe(0);
    expect(good.stdout).toContain(`SHA-256 ok (SHA256SUMS of v${version})`);
    const installed = join(work, "good/usr/local/bin/docxy");
    expect(readFileSync(installed).equals(readFileSync(join(RELEASE, "docxy-linux-x64")))).toBe(true);

    const bad = await install(join(work, "bad"), `${server.url.origin}/tampered`);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("SHA-256 mismatch");
    expect(existsSync(join(work, "bad/usr/local/bin/docxy"))).toBe(false);
  }, 120_000);
});
