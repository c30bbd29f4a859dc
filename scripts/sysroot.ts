/**
 * The C library a docxy binary links, for one target architecture, laid out as Debian installs it
 * (`lib/<triplet>/libc.so.6`, the ELF interpreter). For the host's own architecture that is the
 * host itself (`/`); for the other one it is Debian's own `libc6:<arch>` package, unpacked into
 * dist/sysroot-<arch>/: the arm64 image takes its libraries from there (scripts/image.ts), and
 * qemu-user runs the arm64 binary against it (`qemu-aarch64-static -L`, the tests).
 *
 * `apt-get download libc6:arm64` needs dpkg to know the architecture (scripts/test.sh does it):
 *   dpkg --add-architecture arm64 && apt-get update
 */
import { $ } from "bun";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";

export type Arch = "x64" | "arm64";

/** Names of each architecture for Debian, OCI and the multiarch library directory. */
export const ARCHES = {
  x64: { debian: "amd64", oci: "amd64", triplet: "x86_64-linux-gnu" },
  arm64: { debian: "arm64", oci: "arm64", triplet: "aarch64-linux-gnu" },
} as const;

export const DIST = resolve(import.meta.dir, "../dist");

export function isArch(name: string): name is Arch {
  return Object.hasOwn(ARCHES, name);
}

export async function sysroot(arch: Arch): Promise<string> {
  if (arch === process.arch) return "/";
  const dir = join(DIST, `sysroot-${arch}`);
  const { debian, triplet } = ARCHES[arch];
  if (existsSync(join(dir, "lib", triplet, "libc.so.6"))) return dir;

  mkdirSync(DIST, { recursive: true });
  const work = mkdtempSync(join(DIST, ".sysroot-"));
  try {
    const download = await $`apt-get download libc6:${debian}`.cwd(work).nothrow().quiet();
    if (download.exitCode !== 0) {
      throw new Error(
        `apt-get download libc6:${debian} failed: ${download.stderr.toString().trim()}\n` +
          `dpkg must know the architecture first: dpkg --add-architecture ${debian} && apt-get update`,
      );
    }
    const deb = readdirSync(work).find((f) => f.endsWith(".deb"))!;
    await $`dpkg-deb -x ${join(work, deb)} ${join(work, "root")}`.quiet();
    rmSync(dir, { recursive: true, force: true });
    renameSync(join(work, "root"), dir);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return dir;
}
