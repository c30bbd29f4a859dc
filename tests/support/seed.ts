// Seeds registry storage once per process: a no-auth docker-registry pushes the test images into
// a template root (two registries can share one filesystem root, protocol.md §6.1), and every
// upstream then starts from a private copy of it, so upstreams cannot disturb each other.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { removeAtExit } from "./cleanup";
import { buildBigImage, buildSmallImages, type TestImage, type TestImages } from "./images";
import { pushRepo, type RepoContent } from "./push";
import { startRegistry } from "./registry";

export interface Template {
  /** registry roots to copy, in order, into a new upstream's root (their trees are disjoint) */
  roots: string[];
  images: TestImages;
}

let workDir: string | undefined;
let small: Promise<{ root: string; images: TestImages }> | undefined;
let big: Promise<{ root: string; image: TestImage }> | undefined;

function processWorkDir(): string {
  if (!workDir) {
    const dir = mkdtempSync(join(tmpdir(), "docxy-seed-"));
    workDir = dir;
    removeAtExit(dir);
  }
  return workDir;
}

async function seed(name: string, repos: RepoContent[]): Promise<string> {
  const dir = processWorkDir();
  const root = join(dir, `${name}-root`);
  mkdirSync(root, { recursive: true });
  const registry = await startRegistry({ name: `seed-${name}`, workDir: dir, rootDir: root });
  try {
    await Promise.all(repos.map((r) => pushRepo(registry.url, r)));
  } finally {
    await registry.stop();
  }
  return root;
}

/** The seeded template for this process; built on first use, the big image only when asked. */
export async function template(bigLayer: boolean): Promise<Template> {
  small ??= (async () => {
    const built = buildSmallImages();
    return { root: await seed("small", built.repos), images: built.images };
  })().catch((err) => {
    small = undefined; // let the next caller retry
    throw err;
  });
  if (bigLayer) {
    big ??= (async () => {
      const built = await buildBigImage(processWorkDir());
      const root = await seed("big", [built.repo]);
      rmSync(join(processWorkDir(), "big-layer.tar.gz"), { force: true }); // now stored in the root
      return { root, image: built.image };
    })().catch((err) => {
      big = undefined;
      throw err;
    });
  }
  const s = await small;
  if (!bigLayer || !big) return { roots: [s.root], images: s.images };
  const b = await big;
  return { roots: [s.root, b.root], images: { ...s.images, big: b.image } };
}
