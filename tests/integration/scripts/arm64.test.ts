/**
 * linux-arm64: the binary `DOCXY_BUILD_TARGET=bun-linux-arm64` builds, and the image of it, run
 * here under qemu-user against Debian's arm64 libc (scripts/sysroot.ts). The binary is built when
 * missing or older than dist/docxy; bun fetches the arm64 runtime from the npm registry.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { version } from "../../../package.json";
import { imagePaths } from "../../../scripts/image";
import { sysroot } from "../../../scripts/sysroot";
import { containersTools, podmanUnavailable } from "../../e2e/support/containers";
import { baseEnv, run } from "../../e2e/support/process";
import { DOCXY_BIN, ensureBinary } from "../../support/docxy-process";

const ROOT = resolve(import.meta.dir, "../../..");
const QEMU = "/usr/bin/qemu-aarch64-static";
const arm64 = imagePaths("arm64");

/** Whether a file is missing or older than dist/docxy, i.e. from an older checkout. */
const stale = (file: string) => !existsSync(file) || statSync(file).mtimeMs < statSync(DOCXY_BIN).mtimeMs;

let root = "";
let unavailable = process.arch !== "x64" ? "this test cross-builds from x64" : existsSync(QEMU) ? undefined : `${QEMU} is missing: apt-get install qemu-user-static`;
if (!unavailable) {
  // The libc comes from apt: without the arm64 architecture known to dpkg there is none.
  root = await sysroot("arm64").catch((error: Error) => ((unavailable = error.message), ""));
}
if (unavailable) console.warn(`SKIPPED tests/integration/scripts/arm64.test.ts: ${unavailable}`);

async function bun(script: string, env: Record<string, string>) {
  const child = Bun.spawn([process.execPath, script], { cwd: ROOT, env: { ...baseEnv({ HOME: process.env.HOME ?? "/root", PATH: process.env.PATH ?? "" }), ...env }, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  if (code !== 0) throw new Error(`${script} failed (${code}):\n${stderr}\n${stdout}`);
}

describe.skipIf(unavailable !== undefined)("linux-arm64 under qemu-user", () => {
  beforeAll(async () => {
    await ensureBinary();
    if (stale(arm64.binary)) await bun("scripts/build.ts", { DOCXY_BUILD_TARGET: "bun-linux-arm64", DOCXY_BUILD_OUT: arm64.binary });
  }, 300_000);

  test("the binary is aarch64 and prints its version", async () => {
    expect((await run(["readelf", "-h", arm64.binary])).stdout).toMatch(/Machine:\s+AArch64/);
    const result = await run([QEMU, "-L", root, arm64.binary, "--version"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(`docxy ${version}\n`);
  }, 60_000);

  test.skipIf(podmanUnavailable() !== undefined)("the arm64 image's own files run it: its libraries are the right ones", async () => {
    if (stale(arm64.oci)) await bun("scripts/image.ts", { DOCXY_IMAGE_ARCH: "arm64" });
    const tools = containersTools({ mirrorHost: "127.0.0.1:1" });
    try {
      const loaded = await tools.podman(["load", "-i", arm64.oci]);
      expect(loaded.code, loaded.stderr).toBe(0);
      const [image] = JSON.parse((await tools.podman(["image", "inspect", `docxy:${version}`])).stdout);
      expect(image.Architecture).toBe("arm64");
      // The image's filesystem as the sysroot: nothing from the host or dist/sysroot-arm64 is used.
      const mounted = (await tools.podman(["image", "mount", `docxy:${version}`])).stdout.trim();
      const result = await run([QEMU, "-L", mounted, `${mounted}/usr/local/bin/docxy`, "--version"]);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toBe(`docxy ${version}\n`);
      await tools.podman(["image", "unmount", "--all"]);
    } finally {
      await tools.cleanup();
    }
  }, 600_000);
});
