/**
 * `npm run image`: docxy's container image, built from scratch with buildah, without pulling a
 * base image (the people who need docxy cannot reach Docker Hub). It holds:
 *   /usr/local/bin/docxy                 the compiled binary, the entrypoint
 *   /lib/<triplet>/…, the ELF interpreter the shared libraries the binary links (readelf, below)
 *   /etc/ssl/certs/ca-certificates.crt   the build host's CA bundle, for HTTPS upstreams
 *   /etc/passwd, /etc/group              the user docxy (10001:10001) it runs as
 *   /etc/nsswitch.conf                   names from /etc/hosts, then DNS (the runtime mounts both)
 *   /etc/docxy/docxy.toml                scripts/docxy.example.toml (DOCXY_CONFIG); mount yours over it
 *   /var/lib/docxy                       the volume and working directory, owned by docxy: the cache
 *                                        (DOCXY_CACHE_DIR=/var/lib/docxy/cache, as the systemd unit)
 *                                        and the ACME state
 * and `docxy health` as its HEALTHCHECK (no shell or curl in the image).
 *
 * Two archives of the same image, both tagged docxy:<version>:
 *   dist/docxy-oci.tar     OCI archive: podman load, Docker 25+ load, containerd (ctr import), skopeo.
 *                          OCI image configs have no HEALTHCHECK field, so it is not in this one.
 *   dist/docxy-docker.tar  Docker archive: docker load on any version (Docker 20.10-24 cannot load an
 *                          OCI archive) and podman load; it keeps the HEALTHCHECK.
 * DOCXY_IMAGE_ARCH=arm64 builds from dist/docxy-linux-arm64 with arm64's libc from Debian
 * (scripts/sysroot.ts) into dist/docxy-arm64-oci.tar and dist/docxy-arm64-docker.tar.
 *
 * buildah works in a private storage (vfs, in a temp dir removed afterwards): the archives are the
 * product, and the user's own images are neither read nor changed.
 *
 * Tested by tests/integration/scripts/image.test.ts (podman and docker run it, clients pull through it).
 */
import { $ } from "bun";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { description, version } from "../package.json";
import { ARCHES, DIST, isArch, sysroot, type Arch } from "./sysroot";

const BIN = "/usr/local/bin/docxy";
const STATE = "/var/lib/docxy";
const UID = 10001;
const CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt";
const EXAMPLE_CONFIG = resolve(import.meta.dir, "docxy.example.toml");

export function imagePaths(arch: Arch) {
  const suffix = arch === "x64" ? "" : `-${arch}`;
  return {
    binary: join(DIST, arch === "x64" ? "docxy" : `docxy-linux-${arch}`),
    oci: join(DIST, `docxy${suffix}-oci.tar`),
    docker: join(DIST, `docxy${suffix}-docker.tar`),
  };
}

export async function buildImage(arch: Arch): Promise<void> {
  const paths = imagePaths(arch);
  if (!existsSync(paths.binary)) {
    throw new Error(`${paths.binary} is missing: DOCXY_BUILD_TARGET=bun-linux-${arch} DOCXY_BUILD_OUT=${paths.binary} bun scripts/build.ts`);
  }
  if (!existsSync(CA_BUNDLE)) throw new Error(`${CA_BUNDLE} is missing: apt-get install ca-certificates`);
  const root = await sysroot(arch);
  const libraries = await linkedLibraries(paths.binary, root, ARCHES[arch].triplet);

  const work = mkdtempSync(join(tmpdir(), "docxy-image-"));
  const storage = ["--root", join(work, "storage"), "--runroot", join(work, "run"), "--storage-driver", "vfs"];
  const buildah = async (...args: string[]) => (await $`buildah ${storage} ${args}`.text()).trim();
  try {
    // The files, staged with the modes they get in the image (a umask of 077 would lock docxy out).
    process.umask(0o022);
    const rootfs = join(work, "rootfs");
    const place = (path: string, mode: number, from?: string, text?: string) => {
      const dest = join(rootfs, path);
      mkdirSync(dirname(dest), { recursive: true });
      if (from !== undefined) copyFileSync(from, dest);
      else writeFileSync(dest, text ?? "");
      chmodSync(dest, mode);
    };
    place(BIN, 0o755, paths.binary);
    for (const library of libraries) place(library, 0o755, inRoot(root, library));
    place(CA_BUNDLE, 0o644, CA_BUNDLE);
    place("/etc/passwd", 0o644, undefined, `root:x:0:0:root:/:/sbin/nologin\ndocxy:x:${UID}:${UID}:docxy:${STATE}:/sbin/nologin\n`);
    place("/etc/group", 0o644, undefined, `root:x:0:\ndocxy:x:${UID}:\n`);
    place("/etc/nsswitch.conf", 0o644, undefined, "passwd: files\ngroup: files\nhosts: files dns\n");
    place("/etc/docxy/docxy.toml", 0o644, EXAMPLE_CONFIG);
    mkdirSync(join(rootfs, "tmp"));
    chmodSync(join(rootfs, "tmp"), 0o1777);
    mkdirSync(join(rootfs, dirname(STATE)), { recursive: true });
    const empty = join(work, "empty");
    mkdirSync(empty);

    const container = await buildah("from", "scratch");
    await buildah("copy", "--quiet", container, rootfs, "/");
    // Created by this copy, so only the state directory itself gets docxy's ownership.
    await buildah("copy", "--quiet", "--chown", `${UID}:${UID}`, container, empty, STATE);
    // HEALTHCHECK exists only in the Docker image format: the commit is in that format, and the OCI
    // archive below is converted from it (without the healthcheck, which OCI has no field for).
    await buildah(
      "config",
      ...["--arch", ARCHES[arch].oci, "--os", "linux"],
      ...["--user", `${UID}:${UID}`, "--workingdir", STATE, "--volume", STATE, "--port", "5000/tcp"],
      ...["--env", "PATH=/usr/local/bin", "--env", "DOCXY_CONFIG=/etc/docxy/docxy.toml", "--env", `DOCXY_CACHE_DIR=${STATE}/cache`],
      ...["--entrypoint", JSON.stringify([BIN]), "--stop-signal", "SIGTERM"],
      ...["--healthcheck", `CMD ${BIN} health`, "--healthcheck-interval", "30s", "--healthcheck-timeout", "20s"],
      ...["--healthcheck-start-period", "10s", "--healthcheck-retries", "3"],
      ...["--label", "org.opencontainers.image.title=docxy", "--label", `org.opencontainers.image.description=${description}`],
      ...["--label", `org.opencontainers.image.version=${version}`, "--label", "org.opencontainers.image.licenses=MIT"],
      container,
    );
    const tag = `docxy:${version}`;
    const image = await buildah("commit", "--quiet", "--format", "docker", "--rm", container, tag);
    for (const [transport, file] of [["oci-archive", paths.oci], ["docker-archive", paths.docker]] as const) {
      rmSync(file, { force: true }); // docker-archive refuses to add to an existing file
      await buildah("push", "--quiet", image, `${transport}:${file}:${tag}`);
    }
    const size = await buildah("images", "--format", "{{.Size}}", image);
    console.log(`${tag} linux/${ARCHES[arch].oci}, ${size} (libraries from ${root}: ${libraries.join(" ")}): ${paths.oci}, ${paths.docker}`);
  } finally {
    await $`buildah ${storage} rm --all`.nothrow().quiet();
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * The binary's ELF interpreter and the libraries it needs, transitively, as paths inside `root`:
 * what ldd lists, read with readelf instead of running the binary, which may be for another CPU.
 */
async function linkedLibraries(binary: string, root: string, triplet: string): Promise<string[]> {
  const interpreter = /\[Requesting program interpreter: (.+)\]/.exec(await $`readelf -lW ${binary}`.text())?.[1];
  if (!interpreter || !existsSync(join(root, interpreter))) throw new Error(`${binary}: ELF interpreter ${interpreter} not found in ${root}`);
  const found = new Set([interpreter]);
  const pending = [binary];
  for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
    for (const [, name] of (await $`readelf -dW ${file}`.text()).matchAll(/\(NEEDED\)\s+Shared library: \[(.+?)\]/g)) {
      const path = [`/lib/${triplet}/${name}`, `/usr/lib/${triplet}/${name}`].find((p) => existsSync(join(root, p)));
      if (!path) throw new Error(`${name}, needed by ${file}, is in neither lib/${triplet} nor usr/lib/${triplet} of ${root}`);
      if (!found.has(path)) pending.push(inRoot(root, path));
      found.add(path);
    }
  }
  return [...found].sort();
}

/** The file `path` names inside `root`, symlinks followed, refusing one that leads out of it. */
function inRoot(root: string, path: string): string {
  const real = realpathSync(join(root, path));
  if (root !== "/" && !real.startsWith(`${realpathSync(root)}/`)) throw new Error(`${path} in ${root} leads outside it, to ${real}`);
  return real;
}

if (import.meta.main) {
  const arch = process.env.DOCXY_IMAGE_ARCH ?? "x64";
  if (!isArch(arch)) throw new Error(`DOCXY_IMAGE_ARCH: x64 or arm64, not ${arch}`);
  await buildImage(arch);
}
