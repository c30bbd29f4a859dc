/**
 * `npm run release`: everything a release publishes, in a fresh dist/release/:
 *   docxy-linux-x64, docxy-linux-arm64            the binaries (the names scripts/install.sh
 *                                                 --version downloads)
 *   docxy-linux-{x64,arm64}-{oci,docker}.tar      the images (scripts/image.ts)
 *   install.sh, docxy.service, docxy.example.toml the installer with the unit and config it installs
 *   SHA256SUMS                                    `sha256sum -c SHA256SUMS` checks them all;
 *                                                 install.sh --version refuses a binary it does not match
 * Both binaries are built from this checkout first: x64 as dist/docxy, arm64 as dist/docxy-linux-arm64.
 *
 * Tested by tests/integration/scripts/release.test.ts.
 */
import { $ } from "bun";
import { chmodSync, copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { buildImage, imagePaths } from "./image";
import { DIST } from "./sysroot";

const ROOT = resolve(import.meta.dir, "..");
const OUT = join(DIST, "release");

rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });
for (const arch of ["x64", "arm64"] as const) {
  const paths = imagePaths(arch);
  await $`${process.execPath} scripts/build.ts`.cwd(ROOT).env({ ...process.env, DOCXY_BUILD_TARGET: `bun-linux-${arch}`, DOCXY_BUILD_OUT: paths.binary });
  await buildImage(arch);
  copyFileSync(paths.binary, join(OUT, `docxy-linux-${arch}`));
  chmodSync(join(OUT, `docxy-linux-${arch}`), 0o755);
  copyFileSync(paths.oci, join(OUT, `docxy-linux-${arch}-oci.tar`));
  copyFileSync(paths.docker, join(OUT, `docxy-linux-${arch}-docker.tar`));
}
for (const file of ["install.sh", "docxy.service", "docxy.example.toml"]) copyFileSync(join(ROOT, "scripts", file), join(OUT, file));
chmodSync(join(OUT, "install.sh"), 0o755);
// sha256sum itself writes the file, so its format is the one `sha256sum -c` reads.
await $`sha256sum -- ${readdirSync(OUT).sort()} > SHA256SUMS`.cwd(OUT);
console.log(`${OUT}:\n${await $`ls -l`.cwd(OUT).text()}`);
